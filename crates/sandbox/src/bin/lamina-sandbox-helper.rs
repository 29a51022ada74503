//! The spawner helper on its own, for the sandbox crate's tests (the `lamina` binary runs the
//! same code as `lamina sandbox-helper`).

fn main() {
    if let Err(e) = lamina_sandbox::helper::main() {
        eprintln!("lamina-sandbox-helper: {e}");
        std::process::exit(2);
    }
}
