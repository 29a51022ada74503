//! How each runtime starts, and lamina's own runtime clients.
//!
//! `provided*` runs the package's executable `bootstrap`. Python and Node.js functions run
//! lamina's small runtime clients (embedded in the binary, written to `{data}/runtime` at start)
//! under a host interpreter chosen per runtime ([`Interpreters`]).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use lamina_types::function::LayerCode;
use lamina_types::runtime::{family, RuntimeFamily, SERVED_RUNTIMES};

/// lamina's Python runtime client.
pub const PYTHON_CLIENT: &str = include_str!("../runtimes/python/lamina_runtime.py");
/// lamina's Node.js runtime client.
pub const NODE_CLIENT: &str = include_str!("../runtimes/node/lamina_runtime.cjs");

/// Which interpreter serves which runtime (`python3.12` → `/usr/bin/python3.12`).
///
/// Discovery runs candidates (version-manager shims take a few hundred milliseconds each), so
/// `lamina serve` starts it on a thread of its own ([`Interpreters::discover_in_background`])
/// and listens at once; the first lookup waits for it, blocking its thread (once, in the first
/// moments after a start, and never longer than the discovery the start used to wait for).
#[derive(Debug, Clone)]
pub struct Interpreters {
    map: Arc<OnceLock<BTreeMap<String, PathBuf>>>,
}

impl Default for Interpreters {
    /// No interpreter at all.
    fn default() -> Self {
        Interpreters {
            map: Arc::new(OnceLock::from(BTreeMap::new())),
        }
    }
}

impl Interpreters {
    /// Find interpreters on `path` (a `PATH`-style list): for `python3.X` the first of
    /// `python3.X`, `python3`; for `nodejsN.x` the first of `nodeN`, `node`. Explicit choices in
    /// `overrides` win.
    pub fn discover(path: &str, overrides: &BTreeMap<String, PathBuf>) -> Interpreters {
        Interpreters {
            map: Arc::new(OnceLock::from(discover_map(path, overrides))),
        }
    }

    /// [`Interpreters::discover`] on a thread of its own; lookups wait until it is done. A
    /// discovery that panics finds nothing rather than leaving lookups waiting.
    pub fn discover_in_background(
        path: String,
        overrides: BTreeMap<String, PathBuf>,
    ) -> Interpreters {
        let map = Arc::new(OnceLock::new());
        let filled = map.clone();
        let spawned = std::thread::Builder::new()
            .name("interpreters".into())
            .spawn(move || {
                let found = std::panic::catch_unwind(|| discover_map(&path, &overrides));
                let _ = filled.set(found.unwrap_or_default());
            });
        if spawned.is_err() {
            // No thread to be had: nothing is found rather than lookups waiting forever.
            let _ = map.set(BTreeMap::new());
        }
        Interpreters { map }
    }

    /// The interpreter for `runtime`, if one was found or configured.
    pub fn get(&self, runtime: &str) -> Option<&Path> {
        self.map.wait().get(runtime).map(PathBuf::as_path)
    }

    /// Every runtime with its interpreter, for `lamina doctor`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.map
            .wait()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_path()))
    }
}

/// What [`Interpreters::discover`] finds.
fn discover_map(path: &str, overrides: &BTreeMap<String, PathBuf>) -> BTreeMap<String, PathBuf> {
    let mut map = BTreeMap::new();
    // Each candidate is run once to learn the real executable behind it (version-manager
    // shims such as pyenv's may exist on PATH and still fail to run).
    // Every candidate on PATH, per runtime, in order of preference.
    let mut wanted: Vec<(&str, Vec<PathBuf>, &'static [&'static str])> = Vec::new();
    for runtime in SERVED_RUNTIMES {
        if let Some(p) = overrides.get(*runtime) {
            map.insert(runtime.to_string(), p.clone());
            continue;
        }
        let (names, probe): (Vec<String>, &'static [&'static str]) = match family(runtime) {
            Some(RuntimeFamily::Python) => (
                vec![runtime.to_string(), "python3".to_string()],
                &["-c", "import sys; print(sys.executable)"],
            ),
            Some(RuntimeFamily::Node) => {
                let major = runtime.trim_start_matches("nodejs").trim_end_matches(".x");
                (
                    vec![format!("node{major}"), "node".to_string()],
                    &["-e", "console.log(process.execPath)"],
                )
            }
            _ => continue,
        };
        let found = names.iter().filter_map(|n| which(path, n)).collect();
        wanted.push((runtime, found, probe));
    }
    // Each distinct candidate is run once, all at the same time (version-manager shims
    // can take a few hundred milliseconds each).
    let mut unique: BTreeMap<PathBuf, &'static [&'static str]> = BTreeMap::new();
    for (_, candidates, probe) in &wanted {
        for c in candidates {
            unique.entry(c.clone()).or_insert(probe);
        }
    }
    let probed: BTreeMap<PathBuf, Option<PathBuf>> = std::thread::scope(|s| {
        let running: Vec<_> = unique
            .iter()
            .map(|(c, probe)| (c.clone(), s.spawn(move || real_executable(c, probe))))
            .collect();
        running
            .into_iter()
            .map(|(c, h)| (c, h.join().ok().flatten()))
            .collect()
    });
    for (runtime, candidates, _) in wanted {
        if let Some(found) = candidates
            .iter()
            .find_map(|c| probed.get(c).cloned().flatten())
        {
            map.insert(runtime.to_string(), found);
        }
    }
    map
}

fn which(path: &str, name: &str) -> Option<PathBuf> {
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

/// The directory to mount so that `interpreter` runs in a sandbox: its installation prefix
/// (`/root/.pyenv/versions/3.12.1` for `.../bin/python3.12`), or `None` when it lives in the
/// system directories every sandbox already has.
pub(crate) fn interpreter_prefix(interpreter: &Path) -> Option<PathBuf> {
    const SYSTEM: [&str; 5] = ["/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/"];
    let text = interpreter.to_string_lossy();
    if SYSTEM.iter().any(|d| text.starts_with(d)) {
        return None;
    }
    let bin = interpreter.parent()?;
    let prefix = if bin.file_name().is_some_and(|n| n == "bin") {
        bin.parent()?
    } else {
        bin
    };
    (prefix != Path::new("/")).then(|| prefix.to_path_buf())
}

/// Run `candidate` with `probe` (which prints the interpreter's own executable path) and
/// return that path, or `None` if the candidate does not run.
fn real_executable(candidate: &Path, probe: &[&str]) -> Option<PathBuf> {
    let out = std::process::Command::new(candidate)
        .args(probe)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let printed = String::from_utf8(out.stdout).ok()?;
    let real = PathBuf::from(printed.trim());
    is_executable(&real).then_some(real)
}

/// Whether `p` is a regular file with an exec bit.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The layers of a version merged into one directory, in order (a later layer's file replaces
/// an earlier one's): what the function sees as `/opt`. Built once per combination of layers
/// under `root` (hard links to the unpacked layers where possible) and reused. Blocking.
pub(crate) fn merged_layers(root: &Path, layers: &[LayerCode]) -> std::io::Result<PathBuf> {
    let name: Vec<&str> = layers
        .iter()
        .map(|l| &l.sha256_hex[..l.sha256_hex.len().min(16)])
        .collect();
    let dest = root.join(name.join("-"));
    if dest.exists() {
        return Ok(dest);
    }
    std::fs::create_dir_all(root)?;
    let tmp = root.join(format!(
        ".{}.tmp-{}",
        name.join("-"),
        hex::encode(rand::random::<[u8; 8]>())
    ));
    let built = (|| {
        std::fs::create_dir(&tmp)?;
        for layer in layers {
            overlay(&layer.dir, &tmp)?;
        }
        std::fs::rename(&tmp, &dest)
    })();
    if built.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if dest.exists() {
            // Another start built the same combination first.
            return Ok(dest);
        }
    }
    built.map(|()| dest)
}

/// Copy the tree `src` onto `dst`, replacing what is there.
fn overlay(src: &Path, dst: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if to.is_symlink() || to.is_file() {
                std::fs::remove_file(&to)?;
            }
            if !to.exists() {
                std::fs::create_dir(&to)?;
            }
            overlay(&from, &to)?;
            continue;
        }
        if to.is_symlink() || to.is_file() {
            std::fs::remove_file(&to)?;
        } else if to.is_dir() {
            std::fs::remove_dir_all(&to)?;
        }
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// Write the runtime clients under `dir` (`python/`, `node/`).
pub fn install_clients(dir: &Path) -> std::io::Result<()> {
    for (sub, file, text) in [
        ("python", "lamina_runtime.py", PYTHON_CLIENT),
        ("node", "lamina_runtime.cjs", NODE_CLIENT),
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        let tmp = d.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, d.join(file))?;
    }
    Ok(())
}

/// What to execute for a function: program and arguments.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    /// The program is one of lamina's runtime clients, which reach the Runtime API over a
    /// connection they inherit as `lamina_sandbox::PASSED_FD` (named in `args`).
    pub(crate) passes_runtime_api: bool,
}

/// Why no command could be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("the runtime {0} is not served by this lamina")]
    Unsupported(String),
    #[error(
        "no interpreter found for {0}; install one or configure it (lamina doctor lists them)"
    )]
    NoInterpreter(String),
}

/// Where the function's directories are, as the function sees them: `/var/task`, `/opt` and
/// `/var/runtime` in a namespace sandbox; the host's directories in a plain process.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub(crate) task_root: PathBuf,
    /// Present when the function has layers.
    pub(crate) opt: Option<PathBuf>,
    pub(crate) runtime_dir: PathBuf,
}

impl View {
    /// Lambda's paths, as a sandboxed function sees them.
    pub(crate) fn lambda(has_layers: bool) -> View {
        View {
            task_root: PathBuf::from("/var/task"),
            opt: has_layers.then(|| PathBuf::from("/opt")),
            runtime_dir: PathBuf::from("/var/runtime"),
        }
    }
}

/// The command that starts a function of `runtime` whose code is in `task_root` (a host path,
/// to look for a bootstrap), as seen through `view`.
pub(crate) fn command(
    runtime: &str,
    task_root: &Path,
    view: &View,
    interpreters: &Interpreters,
) -> Result<Command, CommandError> {
    let interpreter = || {
        interpreters
            .get(runtime)
            .map(Path::to_path_buf)
            .ok_or_else(|| CommandError::NoInterpreter(runtime.to_string()))
    };
    match family(runtime) {
        // The package's bootstrap, else a layer's.
        Some(RuntimeFamily::Provided) => Ok(Command {
            program: match &view.opt {
                Some(opt) if !task_root.join("bootstrap").exists() => opt.join("bootstrap"),
                _ => view.task_root.join("bootstrap"),
            },
            args: vec![],
            passes_runtime_api: false,
        }),
        Some(RuntimeFamily::Python) => Ok(Command {
            program: interpreter()?,
            args: vec![
                "-u".into(),
                view.runtime_dir.join("python/lamina_runtime.py").into(),
                runtime_api_fd_arg(),
            ],
            passes_runtime_api: true,
        }),
        Some(RuntimeFamily::Node) => Ok(Command {
            program: interpreter()?,
            args: vec![
                view.runtime_dir.join("node/lamina_runtime.cjs").into(),
                runtime_api_fd_arg(),
            ],
            passes_runtime_api: true,
        }),
        None => Err(CommandError::Unsupported(runtime.to_string())),
    }
}

/// How lamina's runtime clients learn where their Runtime API connection is.
fn runtime_api_fd_arg() -> OsString {
    format!("--runtime-api-fd={}", lamina_sandbox::PASSED_FD).into()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use super::Interpreters;

    /// An executable script in `dir` named `name` that runs `body`.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn discovery_in_the_background_finds_what_runs_and_skips_what_does_not() {
        let dir = tempfile::tempdir().unwrap();
        // Stand-ins that print their own path, as the probes ask real interpreters to.
        let python = script(dir.path(), "python3", "echo \"$0\"");
        let node = script(dir.path(), "node", "echo \"$0\"");
        // A broken shim for python3.12 comes first and must be passed over.
        script(dir.path(), "python3.12", "exit 1");
        let chosen = dir.path().join("chosen-python");
        script(dir.path(), "chosen-python", "exit 1");
        let overrides = BTreeMap::from([("python3.11".to_string(), chosen.clone())]);
        let path = dir.path().display().to_string();

        let background = Interpreters::discover_in_background(path.clone(), overrides.clone());
        let now = Interpreters::discover(&path, &overrides);
        for found in [&background, &now] {
            assert_eq!(found.get("python3.12"), Some(python.as_path()));
            assert_eq!(found.get("nodejs20.x"), Some(node.as_path()));
            assert_eq!(found.get("python3.11"), Some(chosen.as_path()));
            assert_eq!(found.get("provided.al2023"), None);
        }
        assert_eq!(
            background.iter().collect::<Vec<_>>(),
            now.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn with_nothing_on_path_nothing_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let found =
            Interpreters::discover_in_background(dir.path().display().to_string(), BTreeMap::new());
        assert_eq!(found.iter().count(), 0);
        assert_eq!(Interpreters::default().get("python3.12"), None);
    }
}
