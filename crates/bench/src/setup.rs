//! Before measuring: build lamina and the fixtures, find the binaries, ask `lamina doctor` which
//! interpreters and isolation level are in force, and describe the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// The binaries and host facts a run needs.
#[derive(Debug)]
pub(crate) struct Setup {
    pub(crate) lamina: PathBuf,
    /// `rust-noop` of `lamina-fixtures`: the Rust `provided.al2023` no-op's `bootstrap`, built
    /// with the official `lambda_runtime` crate.
    pub(crate) rust_noop: PathBuf,
    /// `rust-min` of `lamina-fixtures`: the same no-op with a minimal runtime client.
    pub(crate) rust_min: PathBuf,
    /// This executable (its `noop` and `floor-server` modes).
    pub(crate) bench: PathBuf,
    /// `(path, version)` of the interpreter lamina uses for `python3.12`, if any.
    pub(crate) python: Option<(PathBuf, String)>,
    /// `(path, version)` of the interpreter lamina uses for `nodejs20.x`, if any.
    pub(crate) node: Option<(PathBuf, String)>,
    /// The isolation levels lamina offers, strongest (its default) first.
    pub(crate) isolation: Vec<String>,
    pub(crate) machine: Machine,
    pub(crate) commit: Option<String>,
}

/// The host the run measured.
#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) kernel: String,
    pub(crate) cpu: String,
    pub(crate) memory: String,
    /// `/proc/loadavg` when the run started (other work on the machine skews every figure).
    pub(crate) load: String,
}

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

/// Build (unless `no_build`) and locate everything.
pub(crate) fn prepare(no_build: bool, bin_dir: Option<PathBuf>) -> Result<Setup> {
    let root = workspace_root();
    if !no_build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("lamina-bench: cargo build --release -p lamina -p lamina-fixtures");
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "lamina",
                "-p",
                "lamina-fixtures",
            ])
            .current_dir(&root)
            .stdin(Stdio::null())
            // Keep stdout for the report (`--json` output must stay parseable).
            .stdout(Stdio::from(std::io::stderr()))
            .status()
            .context("running cargo")?;
        if !status.success() {
            bail!("cargo build --release -p lamina -p lamina-fixtures failed");
        }
    }
    let bin_dir = bin_dir.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("release")
    });
    let find = |name: &str| -> Result<PathBuf> {
        let p = bin_dir.join(name);
        if !p.is_file() {
            bail!(
                "{} is missing: build it with cargo build --release -p lamina -p lamina-fixtures",
                p.display()
            );
        }
        Ok(p)
    };
    let lamina = find("lamina")?;
    let rust_noop = find("rust-noop")?;
    let rust_min = find("rust-min")?;
    let doctor = doctor(&lamina)?;
    Ok(Setup {
        python: interpreter(&doctor, "python3.12"),
        node: interpreter(&doctor, "nodejs20.x"),
        isolation: levels(&doctor),
        lamina,
        rust_noop,
        rust_min,
        bench: std::env::current_exe()?,
        machine: machine(),
        commit: commit(&root),
    })
}

fn doctor(lamina: &Path) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(lamina)
        .arg("doctor")
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .context("running lamina doctor")?;
    if !out.status.success() {
        bail!(
            "lamina doctor failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `  python3.12       /usr/bin/python3 (Python 3.12.3)` → path and version.
fn interpreter(doctor: &str, runtime: &str) -> Option<(PathBuf, String)> {
    let line = doctor
        .lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().next() == Some(runtime))?;
    let rest = line[runtime.len()..].trim();
    let (path, version) = rest.split_once(" (")?;
    if !path.starts_with('/') {
        return None;
    }
    Some((
        PathBuf::from(path),
        version.trim_end_matches(')').to_string(),
    ))
}

fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1048576.0))
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        cpu,
        memory,
        load: read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `git rev-parse --short HEAD`, with `+changes` when the work tree differs from it.
fn commit(root: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{head}+changes")
    } else {
        head
    })
}

impl Setup {
    /// The run's header: machine, commit, interpreters.
    pub(crate) fn header_json(&self, mode: &str) -> Value {
        let m = &self.machine;
        json!({
            "mode": mode,
            "commit": self.commit,
            "machine": {
                "cores": m.cores,
                "kernel": m.kernel,
                "cpu": m.cpu,
                "memory": m.memory,
                "load_average_at_start": m.load,
            },
            "isolation_levels": self.isolation,
            "interpreters": {
                "python3.12": self.python.as_ref().map(|(p, v)| json!({"path": p, "version": v})),
                "nodejs20.x": self.node.as_ref().map(|(p, v)| json!({"path": p, "version": v})),
            },
        })
    }

    pub(crate) fn header_text(&self, mode: &str) -> String {
        let m = &self.machine;
        let interp = |i: &Option<(PathBuf, String)>| {
            i.as_ref()
                .map(|(p, v)| format!("{v} ({})", p.display()))
                .unwrap_or_else(|| "missing".into())
        };
        format!(
            "lamina-bench ({mode} run) on commit {}\n\
             machine: {} cores, {}, {} RAM, Linux {}, load average at start {}\n\
             interpreters: python3.12 -> {}; nodejs20.x -> {}\n\
             isolation levels: {}\n",
            self.commit.as_deref().unwrap_or("unknown"),
            m.cores,
            m.cpu,
            m.memory,
            m.kernel,
            m.load,
            interp(&self.python),
            interp(&self.node),
            self.isolation.join(", "),
        )
    }
}

/// The level `lamina doctor` says is in force, then `process` if that is stronger.
fn levels(doctor: &str) -> Vec<String> {
    let default = doctor
        .lines()
        .find_map(|l| l.strip_prefix("isolation: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("process")
        .to_string();
    let mut out = vec![default];
    if out[0] != "process" {
        out.push("process".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_doctor_lines() {
        let text = "isolation: process (plain)\nruntimes:\n  python3.12       /usr/bin/python3 (Python 3.12.3)\n  nodejs20.x       MISSING: no interpreter found\n";
        assert_eq!(
            interpreter(text, "python3.12"),
            Some((PathBuf::from("/usr/bin/python3"), "Python 3.12.3".into()))
        );
        assert_eq!(interpreter(text, "nodejs20.x"), None);
        assert_eq!(levels(text), vec!["process"]);
        assert_eq!(
            levels("isolation: namespace (available)\n"),
            vec!["namespace", "process"]
        );
    }
}
