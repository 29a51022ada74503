//! Start, limit, freeze and kill one execution environment's process tree.
//!
//! This crate knows processes, not functions: the caller describes what to run and what the
//! process may see in a [`SandboxSpec`]; [`Sandbox::spawn`] returns a [`Process`] whose stdout and
//! stderr share one pipe ([`LogPipe`]), so output keeps the order it was written in.
//!
//! Two isolation levels ([`Isolation`]):
//! - **`namespace`** (the default where the kernel allows it): mount, pid, ipc and uts
//!   namespaces (and a network one for [`Network::None`]); a read-only root holding only the
//!   system directories, a generated `/etc` and the caller's bind mounts; a private `/tmp`
//!   tmpfs; its own `/proc`; a minimal `/dev`; an unprivileged user with no capabilities,
//!   `no_new_privs`, Landlock where the kernel has it and a seccomp filter; memory, CPU and
//!   process limits through cgroups, which also freeze idle environments. Environments are
//!   started by a single-threaded helper process ([`helper`]), never by forking the daemon.
//!
//!   **Pre-started environments.** What does not depend on the function is done ahead of
//!   time: the helper keeps two inits (`PRESTARTED`) cloned into their namespaces, each in a
//!   cgroup of its own with `/tmp` and `/proc` mounted, pivoted into the read-only root, with
//!   its runtime process forked, unprivileged and under Landlock and seccomp. A spawn on the
//!   host's network takes one: the daemon sets the function's limits on its cgroup, makes
//!   detached copies of the function's mounts (`open_tree`, read-only) and sends them with the
//!   program and the pipes straight to the init, which attaches them, resizes `/tmp` if asked
//!   and lets the runtime exec. An isolated network, an empty pool, or a pre-started init that
//!   died or fails for a reason of its own gives a cold start (in the same cgroup). The pool
//!   is refilled when no environment is starting ([`Sandbox::refill_now`]; after a spawn, 50
//!   ms at the latest), so that the refill does not compete for the CPU with the starts.
//! - **`process`**: a plain child process in its own process group with a scrubbed
//!   environment, for hosts without namespaces.
//!
//! A spec may pass the process one descriptor of the caller's, which it finds open as
//! [`PASSED_FD`] (fd 3, not close-on-exec) at every level: lamina hands its runtime clients
//! a connected Runtime API socket that way.
//!
//! Killing an environment kills its whole tree: the pid namespace's init (or the process
//! group) and, where the kernel has it, everything in its cgroup.
//!
//! This is the only crate allowed `unsafe`; every block says why it is sound.

#![allow(unsafe_code)]

pub mod cgroup;
mod child;
mod client;
pub mod helper;
mod protocol;
mod seccomp;

use std::ffi::OsString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

pub use cgroup::{Cgroups, EnvCgroup, Limits};
pub use client::HelperCommand;
pub use protocol::Mount;

/// The user functions run as inside a namespace sandbox (Lambda's `sbx_user1051`).
pub const SANDBOX_UID: u32 = 993;
/// Its group.
pub const SANDBOX_GID: u32 = 990;
/// Most open files per process.
pub const NOFILE_MAX: u64 = 1024;
/// Where the Runtime API listens inside an isolated network: Lambda's own address.
pub const ISOLATED_RUNTIME_API: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9001);

/// How strongly environments are isolated. Ordered: a stricter level compares greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isolation {
    /// A plain child process in its own process group.
    Process,
    /// Namespaces, cgroups, seccomp, Landlock, an unprivileged user.
    Namespace,
}

impl Isolation {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Process => "process",
            Isolation::Namespace => "namespace",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "process" => Ok(Isolation::Process),
            "namespace" => Ok(Isolation::Namespace),
            _ => Err(format!(
                "unknown isolation level {s:?} (process, namespace)"
            )),
        }
    }
}

/// The network an environment sees. Ordered: a stricter choice compares greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Network {
    /// The host's network, as on Lambda.
    Host,
    /// Its own network namespace with only loopback (the Runtime API is served inside it).
    None,
}

impl Network {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Host => "host",
            Network::None => "none",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "host" => Ok(Network::Host),
            "none" => Ok(Network::None),
            _ => Err(format!("unknown network {s:?} (host, none)")),
        }
    }
}

/// What to run, and what it may see and use.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The executable (a path as the process sees it).
    pub program: PathBuf,
    /// Its arguments (without argv[0]).
    pub args: Vec<OsString>,
    /// The complete environment: nothing else from the server's environment is passed.
    pub env: Vec<(String, String)>,
    /// Working directory (as the process sees it).
    pub cwd: PathBuf,
    /// The level this environment runs at; never weaker than the sandbox's.
    pub isolation: Isolation,
    /// Network (namespace level only).
    pub network: Network,
    /// Bind mounts besides the system directories (namespace level only).
    pub mounts: Vec<Mount>,
    /// Memory limit in MB.
    pub memory_mb: u64,
    /// Size of the private `/tmp` in MB.
    pub tmp_mb: u64,
    /// CPU during init, in thousandths of a vCPU, 0 for no quota (see [`Process::set_cpu`]
    /// for afterwards).
    pub cpu_millis: u64,
    /// A descriptor the process gets as [`PASSED_FD`] (the spec's copy is closed when the
    /// spec is dropped).
    pub passed_fd: Option<Arc<OwnedFd>>,
}

/// The descriptor number under which the process finds [`SandboxSpec::passed_fd`]: 3, the
/// first after stdio, open across `execve`.
pub const PASSED_FD: RawFd = 3;

impl SandboxSpec {
    /// A spec for `program` with Lambda's default limits, at the process level.
    pub fn new(program: impl Into<PathBuf>, cwd: impl Into<PathBuf>) -> SandboxSpec {
        SandboxSpec {
            program: program.into(),
            args: vec![],
            env: vec![],
            cwd: cwd.into(),
            isolation: Isolation::Process,
            network: Network::Host,
            mounts: vec![],
            memory_mb: 128,
            tmp_mb: 512,
            cpu_millis: 1000,
            passed_fd: None,
        }
    }
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
    /// The requested isolation is not available on this host.
    #[error("isolation level {wanted} is not available: {reason}")]
    Unavailable {
        /// The level asked for.
        wanted: Isolation,
        /// Why not.
        reason: String,
    },
    /// Anything else (pipe creation, a mount, exec format, ...).
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

/// How the sandbox is configured at start.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The level wanted; `namespace` falls back to `process` (with the reason in
    /// [`Sandbox::describe`]) when the host cannot provide it.
    pub isolation: Isolation,
    /// How to start the helper process.
    pub helper: HelperCommand,
    /// A directory of lamina's own for the sandbox (the generated `/etc`, the root's mount
    /// point).
    pub state_dir: PathBuf,
    /// Remount cgroup2 with `favordynmods` if it lacks it (see
    /// [`Cgroups::favor_dynamic_changes`]).
    pub favor_dynamic_changes: bool,
}

/// The sandbox of one daemon: the level in force, the helper, the cgroup layout.
#[derive(Debug)]
pub struct Sandbox {
    /// The level environments get unless they ask for more.
    isolation: Isolation,
    /// The strongest level this host offers.
    available: Isolation,
    reason: String,
    helper: Option<Arc<client::Helper>>,
    cgroups: Option<Arc<Cgroups>>,
    /// Cgroups made ahead of time (making one is the slowest part of a cold spawn).
    spare: Arc<Mutex<Vec<EnvCgroup>>>,
    refilling: Arc<AtomicBool>,
    /// Environments' inits started ahead of time.
    prestarted: Arc<Prestarted>,
    /// The system part of every root.
    template: protocol::Template,
    /// Mount targets whose mount points the template has.
    prepared: Mutex<std::collections::HashSet<PathBuf>>,
    warnings: Vec<String>,
}

static NEXT_ENV: AtomicU64 = AtomicU64::new(1);

/// How many environments' inits the helper keeps started ahead of time.
const PRESTARTED: usize = 2;

/// The `/tmp` size a pre-started environment mounts (Lambda's default `EphemeralStorage`); a
/// spawn that asks for another resizes it.
const PRESTARTED_TMP_MB: u64 = 512;

/// The limits a pre-started environment's cgroup is made with: Lambda's default `MemorySize`,
/// and no CPU quota (as during any init). A spawn writes only those that differ.
const PRESTARTED_LIMITS: Limits = Limits {
    memory_mb: 128,
    cpu_millis: 0,
};

/// How long after a spawn the pool of pre-started environments is refilled at the latest when
/// nobody says earlier that no environment is starting ([`Sandbox::refill_now`]).
const REFILL_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// Environments' inits started ahead of time by the helper, each in a cgroup of its own (see
/// [`Sandbox::spawn`]).
#[derive(Debug, Default)]
struct Prestarted {
    /// Ready ones, oldest first.
    ready: Mutex<std::collections::VecDeque<Ready>>,
    /// How many are being made.
    making: AtomicUsize,
    /// Why no more are made (the helper cannot), once known.
    off: Mutex<Option<String>>,
    /// The sandbox is gone: whatever is made from now on is removed at once.
    closed: AtomicBool,
    /// A refill is due at this time at the latest (see [`Sandbox::refill_now`]).
    due: Mutex<Option<tokio::time::Instant>>,
}

impl Sandbox {
    /// Plain child processes only.
    pub fn process_only(reason: &str) -> Sandbox {
        Sandbox {
            isolation: Isolation::Process,
            available: Isolation::Process,
            reason: reason.to_string(),
            helper: None,
            cgroups: None,
            spare: Arc::default(),
            refilling: Arc::default(),
            prestarted: Arc::default(),
            template: protocol::Template {
                root: PathBuf::new(),
                symlinks: vec![],
                system_mounts: vec![],
            },
            prepared: Mutex::default(),
            warnings: vec![],
        }
    }

    /// Set up the level `config` asks for, or the strongest the host allows. Never fails:
    /// [`Sandbox::isolation`] and [`Sandbox::describe`] say what is in force and why.
    pub fn start(config: &SandboxConfig) -> Sandbox {
        let mut sandbox = Sandbox::namespaces(config);
        if config.isolation == Isolation::Process {
            // Still offered to functions that ask for it.
            sandbox.isolation = Isolation::Process;
            sandbox.reason = match sandbox.available {
                Isolation::Namespace => {
                    "configured (--isolation process); functions may ask for namespace".into()
                }
                Isolation::Process => {
                    format!("configured (--isolation process); {}", sandbox.reason)
                }
            };
        }
        sandbox
    }

    fn namespaces(config: &SandboxConfig) -> Sandbox {
        let fallback = |why: String| Sandbox::process_only(&why);
        let etc = config.state_dir.join("etc");
        let root_dir = config.state_dir.join("root");
        let prepared = prepare_etc(&etc).and_then(|()| std::fs::create_dir_all(&root_dir));
        if let Err(e) = prepared {
            return fallback(format!(
                "cannot prepare {}: {e}",
                config.state_dir.display()
            ));
        }
        let helper = match client::Helper::start(&config.helper) {
            Ok(h) => h,
            Err(e) => return fallback(format!("the sandbox helper did not start: {e}")),
        };
        if let Some(why) = &helper.hello.namespaces {
            return fallback(why.clone());
        }
        let mut warnings = Vec::new();
        if let Some(why) = &helper.hello.seccomp {
            warnings.push(format!("no seccomp filter: {why}"));
        }
        if helper.hello.landlock_abi <= 0 {
            warnings.push(
                "no Landlock in this kernel: paths are limited by the mount view only".into(),
            );
        }
        let mut cgroups = Cgroups::detect();
        if config.favor_dynamic_changes {
            if let Err(e) = cgroups.favor_dynamic_changes() {
                warnings.push(format!("cannot remount cgroup2 with favordynmods: {e}"));
            }
        }
        cgroup::remove_stale(&cgroups);
        warnings.extend(cgroups.warnings().iter().cloned());
        let (system_mounts, symlinks) = system_view(&etc);
        let sandbox = Sandbox {
            isolation: Isolation::Namespace,
            available: Isolation::Namespace,
            reason: "mount, pid, ipc and uts namespaces available".into(),
            helper: Some(Arc::new(helper)),
            cgroups: Some(Arc::new(cgroups)),
            spare: Arc::default(),
            refilling: Arc::default(),
            prestarted: Arc::default(),
            template: protocol::Template {
                root: root_dir,
                symlinks,
                system_mounts,
            },
            // The template's own (`child::build_template`).
            prepared: Mutex::new(
                ["/var/task", "/var/runtime", "/opt"]
                    .into_iter()
                    .map(PathBuf::from)
                    .collect(),
            ),
            warnings,
        };
        // Inside an async runtime (the daemon), the first environments start pre-started too.
        sandbox.prestart();
        sandbox
    }

    /// The level environments get unless a function asks for a stricter one.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Why that level.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// A human description, one fact per line, for `lamina doctor` and the start-up log.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!("isolation: {} ({})", self.isolation, self.reason)];
        if let Some(h) = &self.helper {
            out.push(format!(
                "seccomp: {}",
                h.hello
                    .seccomp
                    .as_deref()
                    .unwrap_or("filter installed in every environment")
            ));
            out.push(match h.hello.landlock_abi {
                n if n > 0 => format!("landlock: ABI {n}"),
                _ => "landlock: not available in this kernel".into(),
            });
        }
        if self.helper.is_some() {
            out.push(match &*lock(&self.prestarted.off) {
                None => format!(
                    "pre-started: {PRESTARTED} environments' inits kept ready (host network)"
                ),
                Some(why) => format!("pre-started: none ({why})"),
            });
        }
        if let Some(cg) = &self.cgroups {
            for line in cg.describe() {
                out.push(format!("cgroup: {line}"));
            }
        }
        for w in &self.warnings {
            out.push(format!("warning: {w}"));
        }
        out
    }

    /// Start `spec`.
    pub async fn spawn(&self, spec: &SandboxSpec) -> Result<(Process, LogPipe), SpawnError> {
        let other = |source| SpawnError::Other {
            program: spec.program.clone(),
            source,
        };
        match spec.isolation {
            Isolation::Process => return spawn_process(spec),
            Isolation::Namespace if self.available < Isolation::Namespace => {
                return Err(SpawnError::Unavailable {
                    wanted: Isolation::Namespace,
                    reason: self.reason.clone(),
                })
            }
            Isolation::Namespace => {}
        }
        let (Some(helper), Some(cgroups)) = (&self.helper, &self.cgroups) else {
            return Err(SpawnError::Unavailable {
                wanted: Isolation::Namespace,
                reason: self.reason.clone(),
            });
        };
        let limits = Limits {
            memory_mb: spec.memory_mb,
            cpu_millis: spec.cpu_millis,
        };
        // A pre-started init where there is one (not for an isolated network, which needs a
        // namespace of its own); else, or should it fail for a reason of its own, a cold start
        // (in the cgroup the pre-started one was in).
        let taken = match spec.network {
            Network::Host => self.take_prestarted(&limits),
            Network::None => None,
        };
        let result = match taken {
            Some(ready) => match self.take(ready, spec, helper).await {
                Taken::Started(result) => *result,
                Taken::Cold(cgroup, why) => {
                    tracing::debug!(reason = %why, "a pre-started environment was not used");
                    self.spawn_cold(spec, helper, cgroup).await
                }
            },
            None => {
                let name = format!("env-{}", NEXT_ENV.fetch_add(1, Ordering::Relaxed));
                match self.take_cgroup(cgroups, &name, &limits) {
                    Ok(cgroup) => self.spawn_cold(spec, helper, cgroup).await,
                    Err(e) => Err(other(e)),
                }
            }
        };
        // Refill once this environment has started (see `refill_now`), not while it starts.
        self.refill_later();
        result
    }

    /// Say that no environment is starting now (the runtime's init and first invocation of the
    /// last one started are over, say): the sandbox uses the moment to pre-start environments
    /// for the next spawns. Doing that while an environment starts slows its start down by
    /// more than pre-starting saves on a small host (on two CPUs, the 2 ms of CPU a refill
    /// takes compete with the runtime's init), so after a spawn the sandbox waits for this, or
    /// for 50 ms at the latest.
    pub fn refill_now(&self) {
        *lock(&self.prestarted.due) = None;
        self.prestart();
    }

    /// The host pids of the pre-started environments' inits ready to be taken now.
    pub fn prestarted(&self) -> Vec<u32> {
        lock(&self.prestarted.ready)
            .iter()
            .map(|r| r.pid as u32)
            .collect()
    }

    /// Refill the pre-started environments [`REFILL_AFTER`] from now, unless
    /// [`Sandbox::refill_now`] does it before.
    fn refill_later(&self) {
        let (Some(helper), Some(cgroups)) = (&self.helper, &self.cgroups) else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let at = tokio::time::Instant::now() + REFILL_AFTER;
        {
            let mut due = lock(&self.prestarted.due);
            if due.is_some() {
                return;
            }
            *due = Some(at);
        }
        let pool = Arc::downgrade(&self.prestarted);
        let (helper, cgroups, template) = (helper.clone(), cgroups.clone(), self.template.clone());
        handle.spawn(async move {
            tokio::time::sleep_until(at).await;
            let Some(pool) = pool.upgrade() else { return };
            let still_due = {
                let mut due = lock(&pool.due);
                let still = *due == Some(at);
                if still {
                    *due = None;
                }
                still
            };
            if still_due {
                refill(&pool, &helper, &cgroups, &template);
            }
        });
    }

    /// Start `spec` cold: the helper clones its init, which joins `cgroup` (limits set).
    async fn spawn_cold(
        &self,
        spec: &SandboxSpec,
        helper: &client::Helper,
        cgroup: EnvCgroup,
    ) -> Result<(Process, LogPipe), SpawnError> {
        let other = |source| SpawnError::Other {
            program: spec.program.clone(),
            source,
        };
        let mut guard = CgroupGuard(Some(cgroup));
        let (log_r, log_w) = std::io::pipe().map_err(other)?;
        let (status_r, status_w) = std::io::pipe().map_err(other)?;
        let req = protocol::SpawnRequest {
            id: 0,
            program: spec.program.clone(),
            args: args_of(spec),
            env: spec.env.clone(),
            cwd: spec.cwd.clone(),
            template: self.template.clone(),
            mounts: spec.mounts.clone(),
            tmp_mb: spec.tmp_mb,
            cgroup_procs: guard.0.as_ref().map_or(vec![], EnvCgroup::procs_files),
            uid: SANDBOX_UID,
            gid: SANDBOX_GID,
            hostname: "localhost".into(),
            isolated_network: spec.network == Network::None,
            runtime_api: ISOLATED_RUNTIME_API,
            nofile: NOFILE_MAX,
            passes_fd: spec.passed_fd.is_some(),
        };
        let passed = spec.passed_fd.as_deref().map(AsRawFd::as_raw_fd);
        let spawned = helper
            .spawn(req, OwnedFd::from(log_w), OwnedFd::from(status_w), passed)
            .await
            .map_err(|(errno, message)| spawn_error(spec, errno, message))?;
        // The helper made their mount points.
        lock(&self.prepared).extend(spec.mounts.iter().map(|m| m.target.clone()));
        let pid = spawned.pid;
        let pidfd = pidfd_open(pid);
        let status = pipe::Receiver::from_owned_fd(OwnedFd::from(status_r)).map_err(other)?;
        let log = pipe::Receiver::from_owned_fd(OwnedFd::from(log_r)).map_err(other)?;
        Ok((
            Process {
                kind: Kind::Namespace { pid, pidfd, status },
                cgroup: guard.0.take(),
                frozen: false,
                exit: None,
                runtime_api: spawned.listener.map(std::net::TcpListener::from),
                prestarted: false,
            },
            log,
        ))
    }

    /// Start `spec` in a pre-started init: hand it the function's mounts (detached copies made
    /// here with `open_tree`), the program and the pipes, and wait until the program runs.
    async fn take(&self, ready: Ready, spec: &SandboxSpec, helper: &client::Helper) -> Taken {
        let other = |source| SpawnError::Other {
            program: spec.program.clone(),
            source,
        };
        if spec.mounts.len() + 4 > protocol::MAX_FDS {
            return ready.cold("too many mounts for one message".into()).await;
        }
        // Mount points are made in the helper's root template (the pre-started root is
        // read-only); most are made once, for the first environment that needs them.
        let missing: Vec<Mount> = {
            let prepared = lock(&self.prepared);
            spec.mounts
                .iter()
                .filter(|m| !prepared.contains(&m.target))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let targets: Vec<PathBuf> = missing.iter().map(|m| m.target.clone()).collect();
            if let Err((_, why)) = helper.prepare(self.template.clone(), missing).await {
                return ready.cold(why).await;
            }
            lock(&self.prepared).extend(targets);
        }
        let mut trees = Vec::with_capacity(spec.mounts.len());
        for m in &spec.mounts {
            match child::detached_bind(&m.source, m.writable) {
                Ok(tree) => trees.push(tree),
                Err(e) => {
                    let why = format!("open_tree {}: {}", m.source.display(), e.desc());
                    return ready.cold(why).await;
                }
            }
        }
        let pipes = std::io::pipe().and_then(|log| {
            let status = std::io::pipe()?;
            let exec = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            Ok((log, status, exec))
        });
        let ((log_r, log_w), (status_r, status_w), (exec_r, exec_w)) = match pipes {
            Ok(p) => p,
            Err(e) => return Taken::started(Err(other(e))),
        };
        let take = protocol::Take {
            program: spec.program.clone(),
            args: args_of(spec),
            env: spec.env.clone(),
            cwd: spec.cwd.clone(),
            targets: spec.mounts.iter().map(|m| m.target.clone()).collect(),
            tmp_mb: spec.tmp_mb,
            passes_fd: spec.passed_fd.is_some(),
        };
        let mut fds = vec![log_w.as_raw_fd(), status_w.as_raw_fd(), exec_w.as_raw_fd()];
        fds.extend(spec.passed_fd.as_deref().map(AsRawFd::as_raw_fd));
        fds.extend(trees.iter().map(AsRawFd::as_raw_fd));
        if let Err(e) = protocol::send(ready.sock.as_fd(), &take, &fds) {
            // It is gone; if it could not get ready, it said why, and the next ones would not
            // either.
            let why = match readiness_failure(&ready.sock) {
                Some(why) => {
                    self.prestarted
                        .turn_off(format!("a pre-started environment failed: {why}"));
                    why
                }
                None => format!("the pre-started init is gone: {}", e.desc()),
            };
            return ready.cold(why).await;
        }
        drop((log_w, status_w, exec_w, trees));
        // The exec pipe reaches end of file when the program runs (close-on-exec); a failing
        // step writes its description first.
        let mut report = Vec::new();
        let read = async {
            let mut exec = pipe::Receiver::from_owned_fd(exec_r)?;
            exec.read_to_end(&mut report).await
        };
        match tokio::time::timeout(SPAWN_TIMEOUT, read).await {
            Ok(Ok(_)) => match child::ExecReport::parse(&report) {
                child::ExecReport::Ran => {}
                child::ExecReport::Died => {
                    let why = "the pre-started init died before its program ran";
                    return ready.cold(why.into()).await;
                }
                child::ExecReport::Failed(e) if e.retry => return ready.cold(e.what).await,
                child::ExecReport::Failed(e) => {
                    ready.kill();
                    return Taken::started(Err(spawn_error(spec, e.errno, e.what)));
                }
            },
            Ok(Err(e)) => {
                ready.kill();
                return Taken::started(Err(other(e)));
            }
            Err(_) => {
                ready.kill();
                return Taken::started(Err(other(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the environment did not start in time",
                ))));
            }
        }
        let status = pipe::Receiver::from_owned_fd(OwnedFd::from(status_r));
        let log = pipe::Receiver::from_owned_fd(OwnedFd::from(log_r));
        let (status, log) = match (status, log) {
            (Ok(s), Ok(l)) => (s, l),
            (Err(e), _) | (_, Err(e)) => {
                ready.kill();
                return Taken::started(Err(other(e)));
            }
        };
        let Ready {
            pid, pidfd, cgroup, ..
        } = ready;
        Taken::started(Ok((
            Process {
                kind: Kind::Namespace {
                    pid,
                    pidfd: Some(pidfd),
                    status,
                },
                cgroup: Some(cgroup),
                frozen: false,
                exit: None,
                runtime_api: None,
                prestarted: true,
            },
            log,
        )))
    }
}

/// How long a spawn may take before it is given up.
const SPAWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A pre-started init, ready to be taken.
#[derive(Debug)]
struct Ready {
    /// Host pid.
    pid: i32,
    /// The daemon's end of the socket pair with it.
    sock: OwnedFd,
    pidfd: OwnedFd,
    /// The cgroup it is in (the environment's).
    cgroup: EnvCgroup,
}

/// How taking a pre-started init went.
enum Taken {
    /// The environment started, or failed as it would have cold.
    Started(Box<Result<(Process, LogPipe), SpawnError>>),
    /// It failed for a reason of its own (why): start cold, in this cgroup.
    Cold(EnvCgroup, String),
}

impl Taken {
    fn started(result: Result<(Process, LogPipe), SpawnError>) -> Taken {
        Taken::Started(Box::new(result))
    }
}

impl Ready {
    /// SIGKILL it (and with it its pid namespace).
    fn kill(&self) {
        pidfd_kill(&self.pidfd);
    }

    /// Whether it has exited.
    fn exited(&self) -> bool {
        let mut pfd = [nix::poll::PollFd::new(
            self.pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        matches!(nix::poll::poll(&mut pfd, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// Kill it, wait until it (and so its whole pid namespace) is gone, and hand back its
    /// cgroup for a cold start.
    async fn cold(self, why: String) -> Taken {
        self.kill();
        let wait = async {
            // SAFETY: an OwnedFd's descriptor stays open, and the same, until it is dropped,
            // which the AsyncFd does.
            let fd = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    self.pidfd,
                    tokio::io::Interest::READABLE,
                )
            }?;
            let _ = fd.readable().await?;
            Ok::<_, std::io::Error>(())
        };
        if !matches!(tokio::time::timeout(SPAWN_TIMEOUT, wait).await, Ok(Ok(()))) {
            tracing::warn!(
                pid = self.pid,
                "a killed pre-started environment did not exit"
            );
        }
        Taken::Cold(self.cgroup, why)
    }
}

/// The failure a pre-started init reported on `sock` before it died, if any.
fn readiness_failure(sock: &OwnedFd) -> Option<String> {
    let mut buf = [0u8; 4096];
    match protocol::recv_bytes(
        sock.as_fd(),
        &mut buf,
        nix::sys::socket::MsgFlags::MSG_DONTWAIT,
    ) {
        Ok((n, _)) if n > 0 => Some(child::StepError::decode(&buf[..n]).what),
        _ => None,
    }
}

/// The arguments of `spec`'s program, as strings.
fn args_of(spec: &SandboxSpec) -> Vec<String> {
    spec.args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The error for a failed step (`errno`, description) of starting `spec`.
fn spawn_error(spec: &SandboxSpec, errno: i32, message: String) -> SpawnError {
    match errno {
        libc::ENOENT if message.starts_with("exec ") => SpawnError::NotFound {
            program: spec.program.clone(),
        },
        libc::EACCES if message.starts_with("exec ") => SpawnError::PermissionDenied {
            program: spec.program.clone(),
        },
        _ => SpawnError::Other {
            program: spec.program.clone(),
            source: std::io::Error::new(std::io::Error::from_raw_os_error(errno).kind(), message),
        },
    }
}

/// SIGKILL the process `pidfd` refers to.
fn pidfd_kill(pidfd: &OwnedFd) {
    // SAFETY: pidfd_send_signal with a valid pidfd, a signal number, no siginfo and no flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        );
    }
}

impl Sandbox {
    /// A ready pre-started init, with `limits` set on its cgroup.
    fn take_prestarted(&self, limits: &Limits) -> Option<Ready> {
        loop {
            let ready = lock(&self.prestarted.ready).pop_front()?;
            if ready.exited() {
                ready.kill();
                discard(ready.cgroup);
                continue;
            }
            // Made with default limits: set the function's.
            match ready.cgroup.apply(limits) {
                Ok(()) => return Some(ready),
                Err(e) => {
                    tracing::warn!(error = %e, "setting a pre-started environment's limits");
                    ready.kill();
                    discard(ready.cgroup);
                }
            }
        }
    }

    /// Have the helper pre-start inits until [`PRESTARTED`] are ready or on their way. Needs an
    /// async runtime (does nothing without one, as in `lamina doctor`).
    fn prestart(&self) {
        if let (Some(helper), Some(cgroups)) = (&self.helper, &self.cgroups) {
            refill(&self.prestarted, helper, cgroups, &self.template);
        }
    }

    /// A cgroup with `limits`: a spare one if there is one, else a new one; spares are made
    /// again in the background.
    fn take_cgroup(
        &self,
        cgroups: &Arc<Cgroups>,
        name: &str,
        limits: &Limits,
    ) -> std::io::Result<EnvCgroup> {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut cg = match spare {
            Some(cg) => cg,
            None => cgroups.make(name)?,
        };
        if let Err(e) = cg.apply(limits) {
            cg.remove();
            return Err(e);
        }
        self.refill(cgroups);
        Ok(cg)
    }

    fn refill(&self, cgroups: &Arc<Cgroups>) {
        const SPARES: usize = 4;
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let (cgroups, spare, refilling) =
            (cgroups.clone(), self.spare.clone(), self.refilling.clone());
        handle.spawn_blocking(move || {
            let len = || spare.lock().unwrap_or_else(|p| p.into_inner()).len();
            while len() < SPARES {
                let name = format!("env-{}", NEXT_ENV.fetch_add(1, Ordering::Relaxed));
                match cgroups.make(&name) {
                    Ok(cg) => spare.lock().unwrap_or_else(|p| p.into_inner()).push(cg),
                    Err(_) => break,
                }
            }
            refilling.store(false, Ordering::Release);
        });
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Pre-started inits die with the helper; their cgroups go once empty.
        self.prestarted.closed.store(true, Ordering::Release);
        if let Some(helper) = &self.helper {
            helper.stop();
        }
        let ready: Vec<Ready> = lock(&self.prestarted.ready).drain(..).collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        for ready in ready {
            ready.kill();
            let mut cg = ready.cgroup;
            while !cg.remove() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        for mut cg in self
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            cg.remove();
        }
        if let Some(cg) = &self.cgroups {
            cg.remove_base();
        }
    }
}

impl Prestarted {
    /// Make a cgroup and have the helper pre-start an init in it.
    async fn make_one(
        &self,
        helper: &client::Helper,
        cgroups: Arc<Cgroups>,
        template: protocol::Template,
    ) {
        let name = format!("env-{}", NEXT_ENV.fetch_add(1, Ordering::Relaxed));
        let made = tokio::task::spawn_blocking(move || {
            let cg = cgroups.make(&name)?;
            match cg.apply(&PRESTARTED_LIMITS) {
                Ok(()) => Ok(cg),
                Err(e) => {
                    remove_when_empty(cg);
                    Err(e)
                }
            }
        });
        let cgroup = match made.await {
            Ok(Ok(cg)) => cg,
            _ => return,
        };
        let req = protocol::PrestartRequest {
            id: 0,
            template,
            cgroup_procs: cgroup.procs_files(),
            tmp_mb: PRESTARTED_TMP_MB,
            uid: SANDBOX_UID,
            gid: SANDBOX_GID,
            hostname: "localhost".into(),
            nofile: NOFILE_MAX,
        };
        match helper.prestart(req).await {
            Ok(zygote) => {
                let ready = Ready {
                    pid: zygote.pid,
                    sock: zygote.sock,
                    pidfd: zygote.pidfd,
                    cgroup,
                };
                let mut list = lock(&self.ready);
                if self.closed.load(Ordering::Acquire) {
                    drop(list);
                    ready.kill();
                    discard(ready.cgroup);
                } else {
                    list.push_back(ready);
                }
            }
            Err((_, why)) => {
                discard(cgroup);
                if !self.closed.load(Ordering::Acquire) {
                    self.turn_off(why);
                }
            }
        }
    }

    /// Make no more (the helper cannot): say why, once.
    fn turn_off(&self, why: String) {
        let mut off = lock(&self.off);
        if off.is_none() {
            tracing::warn!(
                reason = %why,
                "environments are not pre-started; every one starts cold"
            );
            *off = Some(why);
        }
    }
}

/// Have the helper pre-start inits until [`PRESTARTED`] are ready or on their way. Needs an
/// async runtime (does nothing without one, as in `lamina doctor`).
fn refill(
    pool: &Arc<Prestarted>,
    helper: &Arc<client::Helper>,
    cgroups: &Arc<Cgroups>,
    template: &protocol::Template,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    loop {
        {
            let ready = lock(&pool.ready);
            if lock(&pool.off).is_some()
                || pool.closed.load(Ordering::Acquire)
                || ready.len() + pool.making.load(Ordering::Acquire) >= PRESTARTED
            {
                return;
            }
            pool.making.fetch_add(1, Ordering::AcqRel);
        }
        let (helper, cgroups, pool, template) = (
            helper.clone(),
            cgroups.clone(),
            pool.clone(),
            template.clone(),
        );
        handle.spawn(async move {
            pool.make_one(&helper, cgroups, template).await;
            pool.making.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Kill whatever runs in `cgroup` (a pre-started init that is not wanted), then remove it once
/// empty, in the background where there is an async runtime.
fn discard(cgroup: EnvCgroup) {
    cgroup.kill_all();
    remove_when_empty(cgroup);
}

/// Remove `cgroup` once the kernel has finished killing its processes (in the background
/// where there is an async runtime).
fn remove_when_empty(mut cgroup: EnvCgroup) {
    let mut cleanup = move || {
        for _ in 0..200 {
            if cgroup.remove() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn_blocking(cleanup);
        }
        Err(_) => cleanup(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes an environment's cgroup if the spawn fails half-way.
struct CgroupGuard(Option<EnvCgroup>);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(mut cg) = self.0.take() {
            cg.remove();
        }
    }
}

/// The generated `/etc`: an account for the sandbox user and nothing of the host's secrets.
fn prepare_etc(etc: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(etc)?;
    let write = |name: &str, text: &str| -> std::io::Result<()> {
        let path = etc.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
            return Ok(());
        }
        let tmp = etc.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, path)
    };
    write(
        "passwd",
        &format!(
            "root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:{SANDBOX_UID}:{SANDBOX_GID}::/tmp:/sbin/nologin\n"
        ),
    )?;
    write(
        "group",
        &format!("root:x:0:\nsbx_user1051:x:{SANDBOX_GID}:\n"),
    )?;
    write("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n")?;
    write("hostname", "localhost\n")?;
    write(
        "nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files dns\n",
    )?;
    // Public facts the runtimes need: name resolution, the dynamic linker's cache, the OS.
    for name in ["resolv.conf", "ld.so.cache", "os-release"] {
        if let Ok(bytes) = std::fs::read(Path::new("/etc").join(name)) {
            let text = String::from_utf8_lossy(&bytes);
            if name == "ld.so.cache" {
                let path = etc.join(name);
                if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
                    let tmp = etc.join(".ld.so.cache.tmp");
                    std::fs::write(&tmp, &bytes)?;
                    std::fs::rename(tmp, path)?;
                }
            } else {
                write(name, &text)?;
            }
        }
    }
    // Mount points for the host directories shared read-only (certificates, alternatives).
    for dir in SHARED_ETC {
        std::fs::create_dir_all(etc.join(dir))?;
    }
    Ok(())
}

/// Directories of the host's `/etc` that hold no secrets and that runtimes use.
const SHARED_ETC: [&str; 3] = ["ssl", "ca-certificates", "alternatives"];

/// The system part of every root: `/usr` and the library and binary directories (as the
/// symbolic links they are on merged-/usr systems), and the generated `/etc`.
fn system_view(etc: &Path) -> (Vec<Mount>, Vec<(PathBuf, PathBuf)>) {
    let mut mounts = Vec::new();
    let mut links = Vec::new();
    for dir in [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    ] {
        let path = Path::new(dir);
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(path) {
                    links.push((path.to_path_buf(), target));
                }
            }
            Ok(m) if m.is_dir() => mounts.push(Mount {
                source: path.to_path_buf(),
                target: path.to_path_buf(),
                writable: false,
            }),
            _ => {}
        }
    }
    mounts.push(Mount {
        source: etc.to_path_buf(),
        target: "/etc".into(),
        writable: false,
    });
    for dir in SHARED_ETC {
        let host = Path::new("/etc").join(dir);
        if host.is_dir() {
            mounts.push(Mount {
                source: host.clone(),
                target: host,
                writable: false,
            });
        }
    }
    (mounts, links)
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A pidfd of the child `pid`, registered with the async runtime: readable once the child
/// exits, so whether it has exited is known from readiness, without a `wait4` per warm invoke.
/// `None` where pidfds are missing (Linux before 5.3); the child is then polled with `wait4`.
fn exit_watch(pid: u32) -> Option<tokio::io::unix::AsyncFd<OwnedFd>> {
    // The child is not reaped until it is waited for, so the pid cannot have been reused.
    let fd = pidfd_open(i32::try_from(pid).ok().filter(|p| *p > 0)?)?;
    // SAFETY: `fd` is an open pidfd that the AsyncFd owns from here on; an OwnedFd always
    // returns the same descriptor and closes it only when dropped with the AsyncFd.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .ok()
}

/// Whether the runtime has seen `fd` readable, without a system call.
fn pidfd_ready(fd: &tokio::io::unix::AsyncFd<OwnedFd>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    fd.poll_read_ready(&mut cx).is_ready()
}

/// A plain child process in its own process group.
fn spawn_process(spec: &SandboxSpec) -> Result<(Process, LogPipe), SpawnError> {
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
    // The pipe std reports a failed exec on must not be fd 3, where the passed descriptor goes
    // in the child: if nothing holds fd 3 here, a copy of the passed descriptor takes it.
    let mut low_copy = None;
    if let Some(passed) = &spec.passed_fd {
        let mut passed = passed.as_raw_fd();
        // SAFETY: F_GETFD only reads the flags of fd 3; F_DUPFD_CLOEXEC makes a new
        // descriptor, owned by `low_copy` until the spawn is over.
        unsafe {
            if passed != PASSED_FD && libc::fcntl(PASSED_FD, libc::F_GETFD) < 0 {
                let copy = libc::fcntl(passed, libc::F_DUPFD_CLOEXEC, PASSED_FD);
                if copy < 0 {
                    return Err(other(std::io::Error::last_os_error()));
                }
                passed = copy;
                low_copy = Some(OwnedFd::from_raw_fd(copy));
            }
        }
        // SAFETY: runs in the forked child before exec and only calls dup2 / fcntl, which are
        // async-signal-safe; `passed` is open in the parent for the whole spawn (the spec or
        // `low_copy` holds it), so it is open in the child.
        unsafe {
            cmd.pre_exec(move || {
                let placed = if passed == PASSED_FD {
                    libc::fcntl(passed, libc::F_SETFD, 0)
                } else {
                    libc::dup2(passed, PASSED_FD)
                };
                if placed < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
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
    drop((cmd, low_copy));
    let pid = child.id().unwrap_or(0);
    let pipe = pipe::Receiver::from_owned_fd(OwnedFd::from(reader)).map_err(other)?;
    Ok((
        Process {
            kind: Kind::Child {
                child,
                pid,
                exited: exit_watch(pid),
            },
            cgroup: None,
            frozen: false,
            exit: None,
            runtime_api: None,
            prestarted: false,
        },
        pipe,
    ))
}

/// A running process tree.
#[derive(Debug)]
pub struct Process {
    kind: Kind,
    cgroup: Option<EnvCgroup>,
    frozen: bool,
    exit: Option<Exit>,
    runtime_api: Option<std::net::TcpListener>,
    /// Started from a pre-started init.
    prestarted: bool,
}

#[derive(Debug)]
enum Kind {
    /// `process` level: the child and its process group.
    Child {
        child: tokio::process::Child,
        pid: u32,
        /// Readable once the child has exited (see [`exit_watch`]).
        exited: Option<tokio::io::unix::AsyncFd<OwnedFd>>,
    },
    /// `namespace` level: the init of the pid namespace (host pid), a pidfd for it, and the
    /// pipe where init writes the runtime's exit status.
    Namespace {
        pid: i32,
        pidfd: Option<OwnedFd>,
        status: pipe::Receiver,
    },
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

impl Exit {
    /// Decode init's status message (`C`/`S` + little-endian i32); an empty message means init
    /// itself was killed.
    fn from_status(msg: &[u8]) -> Exit {
        match msg {
            [kind, a, b, c, d] => {
                let v = i32::from_le_bytes([*a, *b, *c, *d]);
                if *kind == b'S' {
                    Exit::Signal(v)
                } else {
                    Exit::Code(v)
                }
            }
            _ => Exit::Signal(libc::SIGKILL),
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
    /// The host pid of the tree's first process (the pid namespace's init at the namespace
    /// level).
    pub fn pid(&self) -> u32 {
        match &self.kind {
            Kind::Child { pid, .. } => *pid,
            Kind::Namespace { pid, .. } => *pid as u32,
        }
    }

    /// The isolation level it runs at.
    pub fn isolation(&self) -> Isolation {
        match self.kind {
            Kind::Child { .. } => Isolation::Process,
            Kind::Namespace { .. } => Isolation::Namespace,
        }
    }

    /// Wait for the program to exit. Cancel-safe.
    pub async fn wait(&mut self) -> Exit {
        if let Some(e) = self.exit {
            return e;
        }
        let exit = match &mut self.kind {
            Kind::Child { child, exited, .. } => {
                if let Some(fd) = exited {
                    // Cancel-safe: readiness stays set once the child has exited.
                    let _ = fd.readable().await;
                }
                match child.wait().await {
                    Ok(s) => Exit::from(s),
                    Err(_) => Exit::Code(-1),
                }
            }
            Kind::Namespace { status, .. } => {
                // Init writes five bytes at once, then exits; end of file alone means init
                // itself was killed. A pipe write this small is atomic.
                let mut msg = [0u8; 5];
                let n = status.read(&mut msg).await.unwrap_or(0);
                Exit::from_status(&msg[..n])
            }
        };
        self.exit = Some(exit);
        exit
    }

    /// Whether the program has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        match &mut self.kind {
            Kind::Child {
                exited: Some(fd), ..
            } if !pidfd_ready(fd) => false,
            Kind::Child { child, .. } => match child.try_wait() {
                Ok(Some(s)) => {
                    self.exit = Some(Exit::from(s));
                    true
                }
                Ok(None) => false,
                Err(_) => true,
            },
            Kind::Namespace { status, .. } => {
                let mut msg = [0u8; 5];
                match status.try_read(&mut msg) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
                    Ok(n) => {
                        self.exit = Some(Exit::from_status(&msg[..n]));
                        true
                    }
                    Err(_) => {
                        self.exit = Some(Exit::Signal(libc::SIGKILL));
                        true
                    }
                }
            }
        }
    }

    /// SIGKILL every process of the tree. Idempotent.
    pub fn kill(&mut self) {
        // A frozen v1 cgroup's processes cannot die until thawed.
        if self.frozen {
            self.thaw();
        }
        if let Some(cg) = &self.cgroup {
            cg.kill();
        }
        match &mut self.kind {
            Kind::Child { child, pid, .. } => {
                if *pid != 0 {
                    // The group may already be gone; that is fine.
                    let _ = killpg(Pid::from_raw(*pid as i32), Signal::SIGKILL);
                }
                let _ = child.start_kill();
            }
            Kind::Namespace { pid, pidfd, .. } => {
                // Killing the pid namespace's init kills every process in it.
                match pidfd {
                    Some(fd) => pidfd_kill(fd),
                    None if self.exit.is_none() => {
                        let _ = nix::sys::signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
                    }
                    None => {}
                }
            }
        }
    }

    /// Peak memory of the environment in bytes: the cgroup's peak where there is one, else
    /// the program's own peak resident set (`VmHWM`).
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        if let Some(bytes) = self.cgroup.as_ref().and_then(EnvCgroup::peak_memory_bytes) {
            return Some(bytes);
        }
        let pid = match &self.kind {
            Kind::Child { pid, .. } => *pid,
            // The program is init's child.
            Kind::Namespace { pid, .. } => {
                let children =
                    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
                children.split_whitespace().next()?.parse().ok()?
            }
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Whether the memory cgroup killed something for lack of memory.
    pub fn out_of_memory(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|cg| cg.oom_kills() > 0)
    }

    /// Set the CPU quota (thousandths of a vCPU); a no-op without a cpu controller.
    pub fn set_cpu(&self, millis: u64) {
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.set_cpu(millis) {
                tracing::debug!(error = %e, "setting the CPU quota");
            }
        }
    }

    /// Freeze every process of the environment (between invocations). Returns whether it did.
    pub fn freeze(&mut self) -> bool {
        let Some(cg) = &self.cgroup else { return false };
        if self.frozen || !cg.can_freeze() {
            return self.frozen;
        }
        self.frozen = cg.set_frozen(true).is_ok();
        self.frozen
    }

    /// Thaw a frozen environment.
    pub fn thaw(&mut self) {
        if !self.frozen {
            return;
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.set_frozen(false) {
                tracing::warn!(error = %e, "thawing an environment");
            }
        }
        self.frozen = false;
    }

    /// Whether the environment is frozen.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// The Runtime API listener made inside an isolated network ([`Network::None`]), listening
    /// on [`ISOLATED_RUNTIME_API`] there; the caller serves it. Taken once.
    pub fn take_runtime_api_listener(&mut self) -> Option<std::net::TcpListener> {
        self.runtime_api.take()
    }

    /// The environment's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<&EnvCgroup> {
        self.cgroup.as_ref()
    }

    /// Whether it was started from an init the helper had started ahead of time.
    pub fn prestarted(&self) -> bool {
        self.prestarted
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if let Some(cg) = self.cgroup.take() {
            remove_when_empty(cg);
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn sh(script: &str) -> SandboxSpec {
        SandboxSpec {
            args: vec!["-c".into(), script.into()],
            env: vec![("ONLY".into(), "this".into())],
            ..SandboxSpec::new("/bin/sh", std::env::temp_dir())
        }
    }

    async fn read_all(mut pipe: LogPipe) -> String {
        let mut out = String::new();
        pipe.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn output_and_scrubbed_environment() {
        let (mut p, pipe) = spawn_process(&sh("echo out; echo err >&2; env")).unwrap();
        assert_eq!(p.wait().await, Exit::Code(0));
        let out = read_all(pipe).await;
        assert!(out.starts_with("out\nerr\n"), "{out}");
        assert!(out.contains("ONLY=this"));
        assert!(!out.contains("HOME="), "server environment leaked: {out}");
    }

    #[tokio::test]
    async fn kill_takes_the_whole_group() {
        let (mut p, pipe) = spawn_process(&sh("sleep 60 & echo $!; wait")).unwrap();
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

    /// The passed descriptor is open as fd 3 in the process, across exec.
    #[tokio::test]
    async fn the_passed_descriptor_is_fd_3() {
        use std::io::{BufRead, Write};
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let spec = SandboxSpec {
            passed_fd: Some(Arc::new(OwnedFd::from(theirs))),
            ..sh("echo ping >&3; read -r answer <&3; echo \"got $answer\"; ls /proc/$$/fd")
        };
        let (mut p, pipe) = spawn_process(&spec).unwrap();
        drop(spec);
        let mut reader = std::io::BufReader::new(ours.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "ping\n");
        (&ours).write_all(b"pong\n").unwrap();
        assert_eq!(p.wait().await, Exit::Code(0));
        let out = read_all(pipe).await;
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("got pong"), "{out}");
        assert!(lines.any(|fd| fd == "3"), "{out}");
    }

    #[tokio::test]
    async fn exit_codes_and_missing_programs() {
        let (mut p, _pipe) = spawn_process(&sh("exit 3")).unwrap();
        assert_eq!(p.wait().await.to_string(), "exit status 3");
        let missing = SandboxSpec {
            program: "/nonexistent/bootstrap".into(),
            ..sh("")
        };
        assert!(matches!(
            spawn_process(&missing),
            Err(SpawnError::NotFound { .. })
        ));
    }
}
