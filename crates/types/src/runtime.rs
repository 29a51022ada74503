//! The runtimes lamina knows, and which of them it can run.
//!
//! Every value of the model's `Runtime` enum is *known* (anything else is a validation error);
//! lamina *serves* the `provided` family (the package's own `bootstrap`), Python 3.9 to 3.14 and
//! Node.js 18 to 24 (through its own small runtime clients run by the host's interpreters).

/// Every value of the `Runtime` enum in the Lambda service model (botocore 1.43/1.44).
pub const MODEL_RUNTIMES: &[&str] = &[
    "nodejs",
    "nodejs4.3",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "java8",
    "java8.al2",
    "java11",
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "python3.9",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "dotnet6",
    "dotnet8",
    "nodejs4.3-edge",
    "go1.x",
    "ruby2.5",
    "ruby2.7",
    "provided",
    "provided.al2",
    "nodejs18.x",
    "python3.10",
    "java17",
    "ruby3.2",
    "ruby3.3",
    "ruby3.4",
    "python3.11",
    "nodejs20.x",
    "provided.al2023",
    "python3.12",
    "java21",
    "python3.13",
    "nodejs22.x",
    "nodejs24.x",
    "python3.14",
    "java25",
    "dotnet10",
    "ruby4.0",
    "python3.15",
    "nodejs26.x",
];

/// The runtimes lamina can run, in the order `lamina doctor` lists them.
pub const SERVED_RUNTIMES: &[&str] = &[
    "provided.al2023",
    "provided.al2",
    "provided",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
];

/// How a served runtime starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeFamily {
    /// `provided*`: the package's (or a layer's) executable `bootstrap`.
    Provided,
    /// `python3.x`: lamina's Python runtime client under a Python interpreter.
    Python,
    /// `nodejsN.x`: lamina's Node.js runtime client under a Node.js interpreter.
    Node,
}

/// The family of a served runtime, or `None` for one lamina cannot run.
pub fn family(runtime: &str) -> Option<RuntimeFamily> {
    if !SERVED_RUNTIMES.contains(&runtime) {
        return None;
    }
    Some(if runtime.starts_with("provided") {
        RuntimeFamily::Provided
    } else if runtime.starts_with("python") {
        RuntimeFamily::Python
    } else {
        RuntimeFamily::Node
    })
}

/// Whether `runtime` is a value of the model's enum.
pub fn is_known(runtime: &str) -> bool {
    MODEL_RUNTIMES.contains(&runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_runtime_is_known_and_has_a_family() {
        for r in SERVED_RUNTIMES {
            assert!(is_known(r), "{r}");
            assert!(family(r).is_some(), "{r}");
        }
        assert_eq!(family("java21"), None);
        assert_eq!(family("python3.12"), Some(RuntimeFamily::Python));
        assert_eq!(family("nodejs22.x"), Some(RuntimeFamily::Node));
        assert_eq!(family("provided.al2023"), Some(RuntimeFamily::Provided));
    }
}
