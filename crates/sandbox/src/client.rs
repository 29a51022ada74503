//! The daemon's side of the spawner helper: start it, send spawn requests, route the answers.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use tokio::sync::oneshot;

use crate::helper::SOCKET_ENV;
use crate::protocol::{self, PrestartRequest, Reply, Request, SpawnRequest, Template, MAX_MESSAGE};

/// How to start the helper: normally the daemon's own executable in helper mode.
#[derive(Debug, Clone)]
pub struct HelperCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments (without argv[0]).
    pub args: Vec<OsString>,
}

/// What the helper found it can do.
#[derive(Debug, Clone)]
pub(crate) struct Hello {
    pub(crate) namespaces: Option<String>,
    pub(crate) landlock_abi: i32,
    pub(crate) seccomp: Option<String>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<(Reply, Vec<OwnedFd>)>>>>;

/// A running helper.
#[derive(Debug)]
pub(crate) struct Helper {
    sock: Arc<OwnedFd>,
    pending: Pending,
    alive: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
    next_id: AtomicU64,
    child: Mutex<std::process::Child>,
    pub(crate) hello: Hello,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Helper {
    /// Start the helper and wait for its greeting.
    pub(crate) fn start(cmd: &HelperCommand) -> io::Result<Helper> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        // The helper's end must survive exec; it is created close-on-exec so that no other
        // process started meanwhile inherits it, and opened up only for this spawn.
        fcntl(&theirs, FcntlArg::F_SETFD(FdFlag::empty()))?;
        let child = std::process::Command::new(&cmd.program)
            .args(&cmd.args)
            .env(SOCKET_ENV, theirs.as_raw_fd().to_string())
            .stdin(std::process::Stdio::null())
            .spawn();
        drop(theirs);
        let mut child = child?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut pfd = [PollFd::new(ours.as_fd(), PollFlags::POLLIN)];
        let hello = match poll(&mut pfd, PollTimeout::from(10_000u16)) {
            Ok(1) => match protocol::recv::<Reply>(ours.as_fd(), &mut buf)? {
                Some((
                    Reply::Hello {
                        namespaces,
                        landlock_abi,
                        seccomp,
                    },
                    _,
                )) => Hello {
                    namespaces,
                    landlock_abi,
                    seccomp,
                },
                _ => None.ok_or_else(|| io::Error::other("the sandbox helper did not greet"))?,
            },
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other("the sandbox helper did not start"));
            }
        };
        let sock = Arc::new(ours);
        let pending: Pending = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let closing = Arc::new(AtomicBool::new(false));
        {
            let (sock, pending, alive, closing) = (
                sock.clone(),
                pending.clone(),
                alive.clone(),
                closing.clone(),
            );
            std::thread::Builder::new()
                .name("lamina-sandbox-helper".into())
                .spawn(move || read_replies(&sock, &pending, &alive, &closing))?;
        }
        Ok(Helper {
            sock,
            pending,
            alive,
            closing,
            next_id: AtomicU64::new(1),
            child: Mutex::new(child),
            hello,
        })
    }

    /// Ask the helper to start an environment (cold). `passed` (the caller's, left open) goes
    /// with the request when `req.passes_fd`.
    pub(crate) async fn spawn(
        &self,
        mut req: SpawnRequest,
        log: OwnedFd,
        status: OwnedFd,
        passed: Option<std::os::fd::RawFd>,
    ) -> Result<Spawned, (i32, String)> {
        req.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = req.id;
        let mut fds = vec![log.as_raw_fd(), status.as_raw_fd()];
        fds.extend(passed);
        let req = Request::Spawn(req);
        match self.call(id, &req, &fds, (log, status)).await? {
            (Reply::Spawned { pid, listener, .. }, mut fds) => Ok(Spawned {
                pid,
                listener: listener.and_then(|_| fds.pop()),
            }),
            (Reply::Failed { errno, message, .. }, _) => Err((errno, message)),
            _ => Err((libc::EPROTO, "an answer that does not fit".into())),
        }
    }

    /// Ask the helper to pre-start an environment's init.
    pub(crate) async fn prestart(&self, mut req: PrestartRequest) -> Result<Zygote, (i32, String)> {
        req.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = req.id;
        match self.call(id, &Request::Prestart(req), &[], ()).await? {
            (Reply::Prestarted { pid, .. }, fds) => match <[OwnedFd; 2]>::try_from(fds) {
                Ok([sock, pidfd]) => Ok(Zygote { pid, sock, pidfd }),
                Err(_) => Err((libc::EPROTO, "a pre-started init without its socket".into())),
            },
            (Reply::Failed { errno, message, .. }, _) => Err((errno, message)),
            _ => Err((libc::EPROTO, "an answer that does not fit".into())),
        }
    }

    /// Ask the helper to make the mount points of `mounts` in the root template.
    pub(crate) async fn prepare(
        &self,
        template: Template,
        mounts: Vec<crate::Mount>,
    ) -> Result<(), (i32, String)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let req = Request::Prepare {
            id,
            template,
            mounts,
        };
        match self.call(id, &req, &[], ()).await? {
            (Reply::Prepared { .. }, _) => Ok(()),
            (Reply::Failed { errno, message, .. }, _) => Err((errno, message)),
            _ => Err((libc::EPROTO, "an answer that does not fit".into())),
        }
    }

    /// Send `req` (with `fds`, closed here with `owned` once sent) and wait for its answer.
    async fn call<T>(
        &self,
        id: u64,
        req: &Request,
        fds: &[std::os::fd::RawFd],
        owned: T,
    ) -> Result<(Reply, Vec<OwnedFd>), (i32, String)> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if !self.alive.load(Ordering::Acquire) {
            lock(&self.pending).remove(&id);
            return Err((libc::EPIPE, "the sandbox helper has exited".into()));
        }
        let sent = protocol::send(self.sock.as_fd(), req, fds);
        drop(owned);
        if let Err(e) = sent {
            lock(&self.pending).remove(&id);
            return Err((
                e as i32,
                format!("sending to the sandbox helper: {}", e.desc()),
            ));
        }
        rx.await
            .map_err(|_| (libc::EPIPE, "the sandbox helper has exited".into()))
    }

    /// Stop the helper (and with it every environment it started). Idempotent.
    pub(crate) fn stop(&self) {
        self.closing.store(true, Ordering::Release);
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let mut child = lock(&self.child);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A started environment, as the helper reports it.
#[derive(Debug)]
pub(crate) struct Spawned {
    /// Its init (host pid).
    pub(crate) pid: i32,
    /// The Runtime API listener made inside an isolated network.
    pub(crate) listener: Option<OwnedFd>,
}

/// A pre-started init, as the helper reports it.
#[derive(Debug)]
pub(crate) struct Zygote {
    /// Host pid.
    pub(crate) pid: i32,
    /// The daemon's end of the socket pair with it.
    pub(crate) sock: OwnedFd,
    /// A pidfd for it.
    pub(crate) pidfd: OwnedFd,
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The reader thread: route each answer to its request, until the helper goes away.
fn read_replies(sock: &OwnedFd, pending: &Pending, alive: &AtomicBool, closing: &AtomicBool) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    while let Ok(Some((reply, fds))) = protocol::recv::<Reply>(sock.as_fd(), &mut buf) {
        let id = match &reply {
            Reply::Spawned { id, .. }
            | Reply::Failed { id, .. }
            | Reply::Prestarted { id, .. }
            | Reply::Prepared { id } => *id,
            Reply::Hello { .. } => continue,
        };
        if let Some(tx) = lock(pending).remove(&id) {
            let _ = tx.send((reply, fds));
        }
    }
    alive.store(false, Ordering::Release);
    // Every waiting spawn fails now (dropping its sender).
    lock(pending).clear();
    if !closing.load(Ordering::Acquire) {
        tracing::warn!("the sandbox helper has exited; new environments cannot start");
    }
}
