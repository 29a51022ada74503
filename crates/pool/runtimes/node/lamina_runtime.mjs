// placeholder until the Node runtime client lands
