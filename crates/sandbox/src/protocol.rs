//! What the daemon and the spawner helper say to each other: one JSON document per
//! `SOCK_SEQPACKET` message, file descriptors alongside (`SCM_RIGHTS`); the same framing between
//! the helper, a pre-started init and its runtime process.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

/// The largest message either side sends.
pub(crate) const MAX_MESSAGE: usize = 256 * 1024;

/// The most descriptors one message carries.
pub(crate) const MAX_FDS: usize = 16;

/// A bind mount into the environment's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the sandbox.
    pub target: PathBuf,
    /// Mounted read-write (only for lamina's own tests; functions get read-only mounts).
    pub writable: bool,
}

/// The system part of every root: what the helper's root template is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Template {
    /// An empty directory the new root is built on (a tmpfs is mounted there).
    pub(crate) root: PathBuf,
    /// Symbolic links to make in the root (`/bin` → `usr/bin` on merged-/usr systems).
    pub(crate) symlinks: Vec<(PathBuf, PathBuf)>,
    /// The system directories every environment sees.
    pub(crate) system_mounts: Vec<Mount>,
}

/// What the daemon asks of the helper.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Start one environment cold. Sent with two descriptors: the log pipe's write end (stdout
    /// and stderr) and the status pipe's write end (the runtime's exit status); then, with
    /// `passes_fd`, the descriptor the runtime gets as [`crate::PASSED_FD`].
    Spawn(SpawnRequest),
    /// Pre-start an environment's init (see `helper`): answered with `Prestarted` once it is
    /// cloned, and done only while no other request waits.
    Prestart(PrestartRequest),
    /// Make the mount points of `mounts` in the root template (a pre-started environment cannot
    /// make them: its root is read-only and the template lives in the helper's namespace).
    Prepare {
        id: u64,
        template: Template,
        mounts: Vec<Mount>,
    },
}

/// Start one environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SpawnRequest {
    pub(crate) id: u64,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: PathBuf,
    pub(crate) template: Template,
    /// This environment's own mounts (its code, layers, runtime client, interpreter).
    pub(crate) mounts: Vec<Mount>,
    /// Size of the private `/tmp` in MB.
    pub(crate) tmp_mb: u64,
    /// `cgroup.procs` files the environment joins before anything runs.
    pub(crate) cgroup_procs: Vec<PathBuf>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) hostname: String,
    /// Own empty network namespace (only loopback). Init then makes a TCP listener on
    /// `runtime_api` inside it, which comes back with the `Spawned` reply.
    pub(crate) isolated_network: bool,
    /// Where the Runtime API listens inside an isolated network (`127.0.0.1:9001`).
    pub(crate) runtime_api: std::net::SocketAddr,
    /// `RLIMIT_NOFILE`.
    pub(crate) nofile: u64,
    /// A third descriptor comes with the request, for the runtime's [`crate::PASSED_FD`].
    pub(crate) passes_fd: bool,
}

/// Pre-start one environment's init: everything that does not depend on the function.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PrestartRequest {
    /// Also the init's name in later `SpawnRequest::prestarted`.
    pub(crate) id: u64,
    pub(crate) template: Template,
    /// The cgroups it joins (limits are set when it is taken).
    pub(crate) cgroup_procs: Vec<PathBuf>,
    /// Size of the `/tmp` it mounts ahead (remounted when a spawn asks for another).
    pub(crate) tmp_mb: u64,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) hostname: String,
    pub(crate) nofile: u64,
}

/// What the daemon sends a pre-started init when it takes it, and what that init passes on to
/// its waiting runtime process. Sent with the log pipe, the status pipe and the exec pipe's
/// write ends, then (with `passes_fd`) the descriptor the runtime gets as [`crate::PASSED_FD`],
/// then one detached mount per entry of `targets` (`open_tree`), in order; the runtime gets the
/// log and exec pipes and the passed descriptor only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Take {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: PathBuf,
    /// Where each detached mount goes (paths inside the root).
    pub(crate) targets: Vec<PathBuf>,
    pub(crate) tmp_mb: u64,
    /// A descriptor for the runtime's [`crate::PASSED_FD`] follows the exec pipe.
    pub(crate) passes_fd: bool,
}

/// The helper's answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// Sent once at start: what the kernel lets the helper do.
    Hello {
        /// `None` when namespaces work, else why not.
        namespaces: Option<String>,
        /// The Landlock ABI version, 0 when the kernel has none.
        landlock_abi: i32,
        /// `None` when the seccomp filter compiled, else why not.
        seccomp: Option<String>,
    },
    /// The environment runs; `pid` is its init process (host pid). With an isolated network
    /// the reply carries the Runtime API listener made inside it.
    Spawned {
        id: u64,
        pid: i32,
        /// Descriptor number in the sender (the listener is attached to the message).
        listener: Option<i32>,
    },
    /// An environment's init was pre-started for `Prestart` `id`: `pid` (host pid). Sent with
    /// the daemon's end of a socket pair with that init (the take goes there; a failure to get
    /// ready comes back) and a pidfd for it.
    Prestarted { id: u64, pid: i32 },
    /// The mount points of `Prepare` `id` exist.
    Prepared { id: u64 },
    /// The environment could not be started.
    Failed {
        id: u64,
        /// `errno` of the failing step, if any.
        errno: i32,
        message: String,
    },
}

/// Send `msg` with `fds` attached.
pub(crate) fn send<T: Serialize>(sock: BorrowedFd<'_>, msg: &T, fds: &[RawFd]) -> nix::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(|_| nix::errno::Errno::EINVAL)?;
    send_bytes(sock, &bytes, fds)
}

/// Send one message of `bytes` with `fds` attached.
pub(crate) fn send_bytes(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[RawFd]) -> nix::Result<()> {
    let iov = [IoSlice::new(bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map(|_| ()),
        }
    }
}

/// Receive one message and its descriptors (close-on-exec). `Ok(None)` at end of stream.
pub(crate) fn recv<T: for<'de> Deserialize<'de>>(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> nix::Result<Option<(T, Vec<OwnedFd>)>> {
    let (len, fds) = recv_bytes(sock, buf, MsgFlags::empty())?;
    if len == 0 {
        return Ok(None);
    }
    let msg = serde_json::from_slice(&buf[..len]).map_err(|_| nix::errno::Errno::EBADMSG)?;
    Ok(Some((msg, fds)))
}

/// Receive one message into `buf`: its length (0 at end of stream) and its descriptors
/// (close-on-exec).
pub(crate) fn recv_bytes(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: MsgFlags,
) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            flags | MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(list) = c {
                        for fd in list {
                            // SAFETY: SCM_RIGHTS gave this process a new descriptor that nothing
                            // else owns; wrapping it makes sure it is closed exactly once.
                            fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                        }
                    }
                }
                return Ok((msg.bytes, fds));
            }
        }
    }
}
