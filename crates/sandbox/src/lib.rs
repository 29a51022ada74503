//! Start, watch and kill one execution environment's process tree.
//!
//! This crate knows processes, not functions: it takes a [`SandboxSpec`] (program, arguments,
//! environment, working directory) and returns a [`Process`] whose stdout and stderr both go to
//! one pipe ([`LogPipe`]) so that the caller sees the output in the order it was written.
//!
//! Isolation levels: today only `process` exists: a plain child process in its own process group,
//! with a scrubbed environment (only what the spec lists) and no stdin. Killing the environment
//! kills the whole group. The `namespace` level (mount/pid/ipc/uts namespaces, cgroups, seccomp)
//! is the next step and will live here too; it is the only crate allowed `unsafe`.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::net::unix::pipe;

/// What to run.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments (without argv[0]).
    pub args: Vec<OsString>,
    /// The complete environment: nothing else from the server's environment is passed.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: PathBuf,
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The executable is missing.
    #[error("{program}: no such file")]
    NotFound {
        /// The program.
        program: PathBuf,
    },
    /// The executable is not executable.
    #[error("{program}: permission denied")]
    PermissionDenied {
        /// The program.
        program: PathBuf,
    },
    /// Anything else (pipe creation, exec format, ...).
    #[error("starting {program}: {source}")]
    Other {
        /// The program.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The read end of the pipe that the process's stdout and stderr share.
pub type LogPipe = pipe::Receiver;

/// A running process tree (the process and everything it starts in its process group).
#[derive(Debug)]
pub struct Process {
    child: tokio::process::Child,
    pid: u32,
    exit: Option<Exit>,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl From<ExitStatus> for Exit {
    fn from(s: ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        }
    }
}

impl fmt::Display for Exit {
    /// Go's wording, which Lambda's `Runtime exited with error: ...` messages use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => {
                let name = match Signal::try_from(*s) {
                    Ok(Signal::SIGKILL) => "killed",
                    Ok(Signal::SIGTERM) => "terminated",
                    Ok(Signal::SIGSEGV) => "segmentation fault",
                    Ok(Signal::SIGABRT) => "aborted",
                    Ok(Signal::SIGBUS) => "bus error",
                    Ok(Signal::SIGFPE) => "floating point exception",
                    Ok(Signal::SIGILL) => "illegal instruction",
                    Ok(Signal::SIGINT) => "interrupt",
                    Ok(Signal::SIGPIPE) => "broken pipe",
                    _ => return write!(f, "signal: {s}"),
                };
                write!(f, "signal: {name}")
            }
        }
    }
}

impl Process {
    /// Start `spec` in its own process group with stdout and stderr on one pipe.
    pub fn spawn(spec: &SandboxSpec) -> Result<(Process, LogPipe), SpawnError> {
        let other = |source| SpawnError::Other {
            program: spec.program.clone(),
            source,
        };
        let (reader, writer) = std::io::pipe().map_err(other)?;
        let writer2 = writer.try_clone().map_err(other)?;
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer2))
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SpawnError::NotFound {
                program: spec.program.clone(),
            },
            std::io::ErrorKind::PermissionDenied => SpawnError::PermissionDenied {
                program: spec.program.clone(),
            },
            _ => other(e),
        })?;
        // `cmd` held the write ends; drop it so the pipe reports EOF when the tree exits.
        drop(cmd);
        let pid = child.id().unwrap_or(0);
        let pipe =
            pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader)).map_err(other)?;
        Ok((
            Process {
                child,
                pid,
                exit: None,
            },
            pipe,
        ))
    }

    /// The process id of the tree's first process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Wait for the first process to exit. Cancel-safe.
    pub async fn wait(&mut self) -> Exit {
        if let Some(e) = self.exit {
            return e;
        }
        let exit = match self.child.wait().await {
            Ok(s) => Exit::from(s),
            Err(_) => Exit::Code(-1),
        };
        self.exit = Some(exit);
        exit
    }

    /// Whether the first process has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        match self.child.try_wait() {
            Ok(Some(s)) => {
                self.exit = Some(Exit::from(s));
                true
            }
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// SIGKILL every process of the tree. Idempotent.
    pub fn kill(&mut self) {
        if self.pid != 0 {
            // The group may already be gone; that is fine.
            let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        }
        let _ = self.child.start_kill();
    }

    /// Peak resident memory of the first process, in bytes (`VmHWM`), while it runs.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exit.is_none() || self.pid != 0 {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn sh(script: &str) -> SandboxSpec {
        SandboxSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("ONLY".into(), "this".into())],
            cwd: std::env::temp_dir(),
        }
    }

    async fn read_all(mut pipe: LogPipe) -> String {
        let mut out = String::new();
        pipe.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn output_and_scrubbed_environment() {
        let (mut p, pipe) = Process::spawn(&sh("echo out; echo err >&2; env")).unwrap();
        assert_eq!(p.wait().await, Exit::Code(0));
        let out = read_all(pipe).await;
        assert!(out.starts_with("out\nerr\n"), "{out}");
        assert!(out.contains("ONLY=this"));
        assert!(!out.contains("HOME="), "server environment leaked: {out}");
    }

    #[tokio::test]
    async fn kill_takes_the_whole_group() {
        let (mut p, pipe) = Process::spawn(&sh("sleep 60 & echo $!; wait")).unwrap();
        let mut pipe = pipe;
        let mut buf = [0u8; 32];
        let n = pipe.read(&mut buf).await.unwrap();
        let child: i32 = std::str::from_utf8(&buf[..n])
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        p.kill();
        assert_eq!(p.wait().await, Exit::Signal(9));
        assert_eq!(Exit::Signal(9).to_string(), "signal: killed");
        // The background child is gone too: the pipe reaches EOF once no process holds it.
        let rest = read_all(pipe).await;
        assert_eq!(rest, "");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::path::Path::new(&format!("/proc/{child}")).exists()
            && std::fs::read_to_string(format!("/proc/{child}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "child {child} survived"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn exit_codes_and_missing_programs() {
        let (mut p, _pipe) = Process::spawn(&sh("exit 3")).unwrap();
        assert_eq!(p.wait().await.to_string(), "exit status 3");
        let missing = SandboxSpec {
            program: "/nonexistent/bootstrap".into(),
            ..sh("")
        };
        assert!(matches!(
            Process::spawn(&missing),
            Err(SpawnError::NotFound { .. })
        ));
    }
}
