//! The spawner helper: a small single-threaded process that starts namespace environments.
//!
//! The daemon never forks (it may be large and is multithreaded, and a multithreaded process
//! cannot safely run code between fork and exec). It starts this helper once (the `lamina`
//! binary runs it as `lamina sandbox-helper`), talks to it over a `SOCK_SEQPACKET` socket, and
//! the helper clones each environment's init (see `child`). The helper dies with the daemon
//! (parent-death signal), and every environment's init dies with the helper, which kills the
//! environment: nothing outlives a killed daemon.
//!
//! Requests: `Spawn` starts an environment cold; `Prestart` clones an init that gets ready
//! ahead of time and waits, and hands the daemon its socket and a pidfd (the daemon then takes
//! it without the helper); `Prepare` makes mount points in the root template, which
//! pre-started environments cannot. Pre-starting waits until no other request does.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::child::{self, ChildFds, StepError};
use crate::protocol::{
    self, Mount, PrestartRequest, Reply, Request, SpawnRequest, Template, MAX_MESSAGE,
};
use crate::seccomp::Filters;

/// The environment variable naming the helper's socket descriptor.
pub const SOCKET_ENV: &str = "LAMINA_SANDBOX_SOCKET";

/// Longest a spawn may take before the helper gives up on it.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Namespaces every environment gets.
const NAMESPACES: libc::c_int =
    libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;

/// Why the helper could not run.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// `LAMINA_SANDBOX_SOCKET` is missing or not a descriptor.
    #[error("{SOCKET_ENV} does not name the daemon's socket")]
    NoSocket,
    /// The socket failed.
    #[error("talking to the daemon: {0}")]
    Socket(#[from] Errno),
}

/// Run the helper until the daemon goes away. Call this first thing in `main`, before any
/// thread is started: the helper must stay single-threaded.
pub fn main() -> Result<(), HelperError> {
    let fd: RawFd = std::env::var(SOCKET_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(HelperError::NoSocket)?;
    if fcntl(
        // SAFETY: only used to check that the descriptor is open.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        FcntlArg::F_GETFD,
    )
    .is_err()
    {
        return Err(HelperError::NoSocket);
    }
    // SAFETY: the daemon passed this descriptor for the helper alone; nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    fcntl(&sock, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if nix::unistd::getppid() == Pid::from_raw(1) {
        // The daemon is already gone.
        return Ok(());
    }
    let filters = Filters::compile();
    let landlock_abi = landlock_abi();
    let mut namespaces = probe_namespaces().err();
    // The helper's own mount namespace, a slave of the host's (host mounts still show up, its
    // own do not leak out): it holds the root template environments are copied from.
    if namespaces.is_none() {
        let own = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).and_then(|()| {
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
                None::<&str>,
            )
        });
        if let Err(e) = own {
            namespaces = Some(format!(
                "cannot make the helper's mount namespace: {}",
                e.desc()
            ));
        }
    }
    protocol::send(
        sock.as_fd(),
        &Reply::Hello {
            namespaces: namespaces.clone(),
            landlock_abi,
            seccomp: filters.as_ref().err().map(ToString::to_string),
        },
        &[],
    )?;
    let (lifeline_r, lifeline_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let mut state = State {
        lifeline: child::Lifeline {
            read: lifeline_r,
            write: lifeline_w,
        },
        own_mounts: namespaces.is_none(),
        filters: filters.ok(),
        landlock: landlock_abi > 0,
        template: None,
        queued: VecDeque::new(),
        no_prestart: None,
        probed: false,
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        // Pre-starting waits until no request does: a spawn never queues behind one.
        let wait = if state.queued.is_empty() { 1000u16 } else { 0 };
        let mut pfd = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        match poll(&mut pfd, PollTimeout::from(wait)) {
            Ok(0) | Err(Errno::EINTR) => {
                if let Some(req) = state.queued.pop_front() {
                    let (reply, fds) = state.prestart(&req);
                    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
                    protocol::send(sock.as_fd(), &reply, &raw)?;
                }
                state.reap();
                continue;
            }
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let Some((req, fds)) = protocol::recv::<Request>(sock.as_fd(), &mut buf)? else {
            // The daemon closed its end: stop.
            return Ok(());
        };
        let req = match req {
            Request::Prestart(req) => {
                state.queued.push_back(req);
                continue;
            }
            Request::Prepare {
                id,
                template,
                mounts,
            } => {
                let reply = match state.prepare_root(&template, &mounts) {
                    Ok(()) => Reply::Prepared { id },
                    Err(e) => Reply::Failed {
                        id,
                        errno: e.errno,
                        message: e.what,
                    },
                };
                protocol::send(sock.as_fd(), &reply, &[])?;
                continue;
            }
            Request::Spawn(req) => req,
        };
        let mut fds = fds.into_iter();
        let (log, status) = (fds.next(), fds.next());
        let passed = fds.next();
        let reply = match (log, status) {
            (Some(log), Some(status)) if req.passes_fd == passed.is_some() => {
                state.spawn(&req, log, status, passed)
            }
            _ => Reply::Failed {
                id: req.id,
                errno: libc::EINVAL,
                message: "a spawn request needs the log and status pipes (and the passed \
                          descriptor it announces)"
                    .into(),
            },
        };
        let fds: Vec<RawFd> = match &reply {
            Reply::Spawned {
                listener: Some(fd), ..
            } => vec![*fd],
            _ => vec![],
        };
        let sent = protocol::send(sock.as_fd(), &reply, &fds);
        for fd in fds {
            // SAFETY: `spawn` handed over this descriptor for sending; it is closed here, once.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        sent?;
        state.reap();
    }
}

/// What the helper keeps between requests.
#[derive(Debug)]
struct State {
    /// Open for the helper's whole life; environments' inits see its end of file if the helper
    /// died before their parent-death signal was set.
    lifeline: child::Lifeline,
    /// Whether the helper has its own mount namespace (else it starts nothing).
    own_mounts: bool,
    filters: Option<Filters>,
    landlock: bool,
    /// The root template built, if any.
    template: Option<Template>,
    /// `Prestart` requests not done yet (done when no other request waits).
    queued: VecDeque<PrestartRequest>,
    /// Why environments cannot be pre-started here, once known.
    no_prestart: Option<String>,
    /// Whether detached mounts were tried.
    probed: bool,
}

impl State {
    /// Start one environment cold.
    fn spawn(
        &mut self,
        req: &SpawnRequest,
        log: OwnedFd,
        status: OwnedFd,
        passed: Option<OwnedFd>,
    ) -> Reply {
        let failed = |errno: i32, message: String| Reply::Failed {
            id: req.id,
            errno,
            message,
        };
        if !self.own_mounts {
            return failed(
                libc::EPERM,
                "the sandbox helper has no mount namespace of its own".into(),
            );
        }
        if let Err(e) = self.prepare_root(&req.template, &req.mounts) {
            return failed(e.errno, e.what);
        }
        spawn(
            req,
            (log, status, passed),
            self.filters.as_ref(),
            self.landlock,
            &self.lifeline,
        )
    }

    /// (Re)build the root template when `template` differs from the one built, and make the
    /// mount points of `mounts` in it. The template's tmpfs is shared with every environment's
    /// copy of it, so a mount point made here also shows up in pre-started ones.
    fn prepare_root(&mut self, template: &Template, mounts: &[Mount]) -> Result<(), StepError> {
        if self.template.as_ref() != Some(template) {
            // (A sandbox has one template: pre-started inits, which hold a copy of the one they
            // were made from, never see another.)
            self.template = None;
            child::build_template(template)?;
            self.template = Some(template.clone());
        }
        for m in mounts {
            let mut at = template.root.clone();
            at.extend(
                m.target
                    .components()
                    .filter(|c| matches!(c, std::path::Component::Normal(_))),
            );
            child::mount_point(&m.source, &at)?;
        }
        Ok(())
    }

    /// Pre-start an environment's init for `req`. The reply carries the daemon's end of its
    /// socket and a pidfd for it.
    fn prestart(&mut self, req: &PrestartRequest) -> (Reply, Vec<OwnedFd>) {
        let failed = |errno: i32, message: String| {
            (
                Reply::Failed {
                    id: req.id,
                    errno,
                    message,
                },
                vec![],
            )
        };
        if !self.own_mounts {
            return failed(
                libc::EPERM,
                "the sandbox helper has no mount namespace of its own".into(),
            );
        }
        if let Err(e) = self.prepare_root(&req.template, &[]) {
            return failed(e.errno, e.what);
        }
        if !self.probed {
            self.probed = true;
            // A pre-started environment gets its mounts as detached trees (Linux 5.12+).
            let probe = req.template.root.join("var/task");
            if let Err(e) = child::detached_bind(&probe, false) {
                self.no_prestart = Some(format!(
                    "no detached mounts (open_tree, mount_setattr) in this kernel: {}",
                    e.desc()
                ));
            }
        }
        if let Some(why) = &self.no_prestart {
            return failed(libc::ENOTSUP, why.clone());
        }
        let (ours, theirs) = match socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(pair) => pair,
            Err(e) => return failed(e as i32, format!("socketpair: {}", e.desc())),
        };
        match clone_process(NAMESPACES) {
            Ok(None) => {
                drop(ours);
                child::zygote(
                    req,
                    theirs,
                    self.filters.as_ref(),
                    self.landlock,
                    &self.lifeline,
                )
            }
            Ok(Some(pid)) => {
                drop(theirs);
                // Not reaped before this (only this process reaps it): the pid is still its.
                let Some(pidfd) = crate::pidfd_open(pid.as_raw()) else {
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
                    return failed(libc::ENOSYS, "pidfd_open".into());
                };
                (
                    Reply::Prestarted {
                        id: req.id,
                        pid: pid.as_raw(),
                    },
                    vec![ours, pidfd],
                )
            }
            Err(e) => failed(e as i32, format!("clone: {}", e.desc())),
        }
    }

    /// Reap exited environments' init processes (their status went through the status pipe).
    fn reap(&mut self) {
        while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            if s == WaitStatus::StillAlive {
                break;
            }
        }
    }
}

/// `clone` with fork semantics (no new stack): returns `Ok(None)` in the child.
fn clone_process(flags: libc::c_int) -> Result<Option<Pid>, Errno> {
    // SAFETY: with a null stack, clone behaves like fork: the child continues on a copy of this
    // (single-threaded) process's memory, so it may allocate and run any code.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match Errno::result(r)? {
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// Whether this kernel lets us make the namespaces an environment needs.
fn probe_namespaces() -> Result<(), String> {
    match clone_process(NAMESPACES) {
        Ok(None) => child::exit_now(0),
        Ok(Some(pid)) => {
            let _ = waitpid(pid, None);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot create mount, pid, ipc and uts namespaces: {}",
            e.desc()
        )),
    }
}

/// The kernel's Landlock ABI version, 0 without Landlock.
fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag, the syscall only
    // returns the ABI version.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        0
    } else {
        r as i32
    }
}

/// Start one environment and wait until its program is executing (or failed to).
fn spawn(
    req: &SpawnRequest,
    (log, status, passed): (OwnedFd, OwnedFd, Option<OwnedFd>),
    filters: Option<&Filters>,
    landlock: bool,
    lifeline: &child::Lifeline,
) -> Reply {
    let failed = |errno: i32, message: String| Reply::Failed {
        id: req.id,
        errno,
        message,
    };
    let (exec_r, exec_w) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return failed(e as i32, format!("pipe: {}", e.desc())),
    };
    let mut flags = NAMESPACES;
    // With an isolated network, init sends back the Runtime API listener it made inside.
    let mut back = None;
    if req.isolated_network {
        flags |= libc::CLONE_NEWNET;
        match socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(pair) => back = Some(pair),
            Err(e) => return failed(e as i32, format!("socketpair: {}", e.desc())),
        }
    }
    let pid = match clone_process(flags) {
        Ok(None) => {
            drop(exec_r);
            let fds = ChildFds {
                log,
                status,
                exec: exec_w,
                listener_to: back.map(|(_, theirs)| theirs),
                passed,
            };
            child::init(req, fds, filters, landlock, lifeline)
        }
        Ok(Some(pid)) => pid,
        Err(e) => return failed(e as i32, format!("clone: {}", e.desc())),
    };
    drop((log, status, exec_w, passed));
    let kill = || {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    };
    match wait_exec(&exec_r) {
        Ok(()) => {}
        Err(Failure::Step(e)) => {
            kill();
            return failed(e.errno, e.what);
        }
        Err(Failure::Os(errno, message)) => {
            kill();
            return failed(errno, message);
        }
    }
    let mut listener = None;
    if let Some((ours, theirs)) = back {
        drop(theirs);
        let mut buf = [0u8; 64];
        match protocol::recv::<u8>(ours.as_fd(), &mut buf) {
            Ok(Some((_, mut fds))) if !fds.is_empty() => listener = fds.pop(),
            _ => {
                kill();
                return failed(
                    libc::EIO,
                    "no Runtime API listener from the environment".into(),
                );
            }
        }
    }
    Reply::Spawned {
        id: req.id,
        pid: pid.as_raw(),
        listener: listener.map(IntoRawFd::into_raw_fd),
    }
}

/// Why a program did not start.
enum Failure {
    /// A step of the environment failed (reported on the exec pipe).
    Step(StepError),
    /// Waiting for it failed, or it took too long.
    Os(i32, String),
}

/// Wait until the program runs: the exec pipe reaches end of file when it does (close-on-exec);
/// a failing step writes its description first.
fn wait_exec(exec_r: &OwnedFd) -> Result<(), Failure> {
    let mut report = Vec::new();
    let deadline = Instant::now() + SPAWN_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = [PollFd::new(exec_r.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut pfd, PollTimeout::from(ms)) {
            Ok(0) => {
                return Err(Failure::Os(
                    libc::ETIMEDOUT,
                    "the environment did not start in time".into(),
                ))
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Failure::Os(e as i32, format!("poll: {}", e.desc()))),
            Ok(_) => {}
        }
        let mut chunk = [0u8; 4096];
        match nix::unistd::read(exec_r.as_fd(), &mut chunk) {
            Ok(0) => break,
            Ok(n) => report.extend_from_slice(&chunk[..n]),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Failure::Os(e as i32, format!("read: {}", e.desc()))),
        }
    }
    match child::ExecReport::parse(&report) {
        child::ExecReport::Ran => Ok(()),
        child::ExecReport::Failed(e) => Err(Failure::Step(e)),
        child::ExecReport::Died => Err(Failure::Os(
            libc::EIO,
            "the environment's init died before its program ran".into(),
        )),
    }
}
