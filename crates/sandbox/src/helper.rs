//! The spawner helper: a small single-threaded process that starts namespace environments.
//!
//! The daemon never forks (it may be large and is multithreaded, and a multithreaded process
//! cannot safely run code between fork and exec). It starts this helper once (the `lamina`
//! binary runs it as `lamina sandbox-helper`), talks to it over a `SOCK_SEQPACKET` socket, and
//! the helper clones each environment's init (see `child`). The helper dies with the daemon
//! (parent-death signal), and every environment's init dies with the helper, which kills the
//! environment: nothing outlives a killed daemon.

use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::child::{self, ChildFds, StepError};
use crate::protocol::{self, Reply, SpawnRequest, MAX_MESSAGE};
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
    let own_mounts = namespaces.is_none();
    protocol::send(
        sock.as_fd(),
        &Reply::Hello {
            namespaces,
            landlock_abi,
            seccomp: filters.as_ref().err().map(ToString::to_string),
        },
        &[],
    )?;
    let filters = filters.ok();
    // The template's identity: the root, links and system mounts it was built from.
    let mut template: Option<(std::path::PathBuf, String)> = None;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let mut pfd = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        match poll(&mut pfd, PollTimeout::from(1000u16)) {
            Ok(0) | Err(Errno::EINTR) => {
                reap();
                continue;
            }
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let Some((req, fds)) = protocol::recv::<SpawnRequest>(sock.as_fd(), &mut buf)? else {
            // The daemon closed its end: stop.
            return Ok(());
        };
        let reply = match <[OwnedFd; 2]>::try_from(fds) {
            Ok(_) if !own_mounts => Reply::Failed {
                id: req.id,
                errno: libc::EPERM,
                message: "the sandbox helper has no mount namespace of its own".into(),
            },
            Ok([log, status]) => match prepare_root(&req, &mut template) {
                Ok(()) => spawn(&req, log, status, filters.as_ref(), landlock_abi > 0),
                Err(e) => Reply::Failed {
                    id: req.id,
                    errno: e.errno,
                    message: e.what,
                },
            },
            Err(_) => Reply::Failed {
                id: req.id,
                errno: libc::EINVAL,
                message: "a spawn request needs the log and status pipes".into(),
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
        reap();
    }
}

/// (Re)build the root template when this request's system view differs from the one built,
/// and make the mount points of the request's own mounts in it.
fn prepare_root(
    req: &SpawnRequest,
    template: &mut Option<(std::path::PathBuf, String)>,
) -> Result<(), StepError> {
    let id = (
        req.root.clone(),
        format!("{:?}{:?}", req.symlinks, req.system_mounts),
    );
    if template.as_ref() != Some(&id) {
        *template = None;
        child::build_template(req)?;
        *template = Some(id);
    }
    for m in &req.mounts {
        let mut at = req.root.clone();
        at.extend(
            m.target
                .components()
                .filter(|c| matches!(c, std::path::Component::Normal(_))),
        );
        child::mount_point(&m.source, &at)?;
    }
    Ok(())
}

/// Reap exited environments' init processes (their status went through the status pipe).
fn reap() {
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
        if s == WaitStatus::StillAlive {
            break;
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
    log: OwnedFd,
    status: OwnedFd,
    filters: Option<&Filters>,
    landlock: bool,
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
            };
            child::init(req, fds, filters, landlock)
        }
        Ok(Some(pid)) => pid,
        Err(e) => return failed(e as i32, format!("clone: {}", e.desc())),
    };
    drop((log, status, exec_w));
    // The exec pipe reaches end of file when the program runs (close-on-exec); a failing step
    // writes its description first.
    let mut report = Vec::new();
    let deadline = Instant::now() + SPAWN_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = [PollFd::new(exec_r.as_fd(), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut pfd, PollTimeout::from(ms)) {
            Ok(0) => {
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                return failed(
                    libc::ETIMEDOUT,
                    "the environment did not start in time".into(),
                );
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return failed(e as i32, format!("poll: {}", e.desc())),
            Ok(_) => {}
        }
        let mut chunk = [0u8; 4096];
        match nix::unistd::read(exec_r.as_fd(), &mut chunk) {
            Ok(0) => break,
            Ok(n) => report.extend_from_slice(&chunk[..n]),
            Err(Errno::EINTR) => continue,
            Err(e) => return failed(e as i32, format!("read: {}", e.desc())),
        }
    }
    if report.is_empty() {
        let mut listener = None;
        if let Some((ours, theirs)) = back {
            drop(theirs);
            let mut buf = [0u8; 64];
            match protocol::recv::<u8>(ours.as_fd(), &mut buf) {
                Ok(Some((_, mut fds))) if !fds.is_empty() => listener = fds.pop(),
                _ => {
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    return failed(
                        libc::EIO,
                        "no Runtime API listener from the environment".into(),
                    );
                }
            }
        }
        return Reply::Spawned {
            id: req.id,
            pid: pid.as_raw(),
            listener: listener.map(IntoRawFd::into_raw_fd),
        };
    }
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
    let (errno, message) = StepError::decode(&report);
    failed(errno, message)
}
