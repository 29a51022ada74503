//! What runs inside a new environment, between `clone` and `execve`.
//!
//! The helper clones a process into new mount, pid, ipc and uts namespaces (and a network one
//! when asked). That process is the environment's **init** (pid 1 inside): it joins the cgroups,
//! builds the root (a tmpfs with read-only bind mounts, a private `/tmp`, its own `/proc`, a
//! minimal `/dev`), pivots into it, and forks the **runtime**, which drops every privilege
//! (capabilities, root, new privileges), applies Landlock and seccomp, and execs the function's
//! program. Init then waits; when the runtime exits it writes the status to the status pipe and
//! exits, and the kernel kills whatever else is left in the pid namespace.
//!
//! A **pre-started** init ([`zygote`]) does all of that ahead of time but what depends on the
//! function: it joins its cgroups, mounts `/tmp` and `/proc`, pivots into the root, makes it
//! read-only, and forks the runtime, which drops its privileges and installs Landlock and
//! seccomp at once; both then wait. When the daemon takes it ([`Take`], on the socket the
//! helper handed over), init attaches the function's mounts (detached copies the daemon made
//! with `open_tree`, [`detached_bind`]), resizes `/tmp` if asked, and passes the program, its
//! environment and the log and exec pipes to the runtime, which only places its stdio, changes
//! directory and execs.
//!
//! Both run in a copy of the single-threaded helper, so allocating here is safe. A failing step
//! writes `errno` and a description to the exec pipe (close-on-exec) and exits; the runtime
//! writes a mark right before `execve` ([`ExecReport`]), so that whoever waits tells a program
//! that runs from an environment that died. A pre-started environment marks the failures that
//! do not depend on the function (`retry`): the daemon then starts the environment cold.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::socket::MsgFlags;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{chdir, pivot_root, setgroups, setresgid, setresuid, Gid, Pid, Uid};

use crate::protocol::{self, PrestartRequest, SpawnRequest, Take, Template, MAX_MESSAGE};
use crate::seccomp::Filters;
use crate::PASSED_FD;

/// A step that failed: what, and the OS error.
#[derive(Debug)]
pub(crate) struct StepError {
    pub(crate) errno: i32,
    pub(crate) what: String,
    /// A pre-started environment failed for a reason of its own, not the function's: starting
    /// the environment cold may work.
    pub(crate) retry: bool,
}

impl StepError {
    fn new(what: impl Into<String>, errno: i32) -> StepError {
        StepError {
            errno,
            what: what.into(),
            retry: false,
        }
    }

    /// The same failure, marked as one that starting cold may not have.
    fn retry(mut self) -> StepError {
        self.retry = true;
        self
    }

    /// `errno` (after `!` when `retry`) then the text, as the helper parses it.
    pub(crate) fn encode(&self) -> Vec<u8> {
        format!(
            "{}{}\n{}: {}",
            if self.retry { "!" } else { "" },
            self.errno,
            self.what,
            Errno::from_raw(self.errno).desc()
        )
        .into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8]) -> StepError {
        let text = String::from_utf8_lossy(bytes);
        let (first, what) = text.split_once('\n').unwrap_or(("0", &text));
        let (retry, number) = match first.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, first),
        };
        StepError {
            errno: number.parse().unwrap_or(0),
            what: what.to_string(),
            retry,
        }
    }
}

trait Step<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, StepError>;
}

impl<T> Step<T> for nix::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, StepError> {
        self.map_err(|e| StepError::new(what(), e as i32))
    }
}

impl<T> Step<T> for std::io::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, StepError> {
        self.map_err(|e| StepError::new(what(), e.raw_os_error().unwrap_or(libc::EIO)))
    }
}

/// The descriptors an environment starts with (all close-on-exec until placed).
#[derive(Debug)]
pub(crate) struct ChildFds {
    /// stdout and stderr.
    pub(crate) log: OwnedFd,
    /// Where init writes the runtime's exit status.
    pub(crate) status: OwnedFd,
    /// Where a failing step is described.
    pub(crate) exec: OwnedFd,
    /// With an isolated network: where the Runtime API listener made inside goes.
    pub(crate) listener_to: Option<OwnedFd>,
    /// What the runtime gets as [`PASSED_FD`].
    pub(crate) passed: Option<OwnedFd>,
}

/// A pipe the helper holds the write end of for its whole life: an init that reads end of file
/// from it knows the helper is gone (its parent-death signal, set a moment after the clone,
/// would never come).
#[derive(Debug)]
pub(crate) struct Lifeline {
    pub(crate) read: OwnedFd,
    pub(crate) write: OwnedFd,
}

impl Lifeline {
    /// In a new init: close its copy of the write end, set the parent-death signal, and report
    /// whether the helper is still there.
    fn hold(&self) -> Result<bool, StepError> {
        // SAFETY: closes this process's copy of the write end, which it never uses.
        unsafe { libc::close(self.write.as_raw_fd()) };
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
            .step(|| "set the parent-death signal".into())?;
        let mut pfd = [nix::poll::PollFd::new(
            self.read.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let r = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::ZERO);
        Ok(!matches!(r, Ok(n) if n > 0))
    }
}

/// `path` inside `root` (`/var/task` → `{root}/var/task`).
fn inside(root: &Path, path: &Path) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in path.components() {
        if let Component::Normal(part) = c {
            out.push(part);
        }
    }
    out
}

/// The environment's init. Never returns.
pub(crate) fn init(
    req: &SpawnRequest,
    fds: ChildFds,
    filters: Option<&Filters>,
    landlock: bool,
    lifeline: &Lifeline,
) -> ! {
    let exec_fd = fds.exec.as_raw_fd();
    // Die with the helper.
    match lifeline.hold() {
        Ok(true) => {}
        Ok(false) => exit_now(0),
        Err(e) => fail(exec_fd, &e),
    }
    if let Err(e) = build(req) {
        fail(exec_fd, &e);
    }
    if let Some(to) = &fds.listener_to {
        // The Runtime API's socket, made inside the environment's network namespace so that
        // its runtime can reach it on loopback; the daemon serves it.
        let sent = std::net::TcpListener::bind(req.runtime_api)
            .step(|| format!("listen on {} for the Runtime API", req.runtime_api))
            .and_then(|l| {
                crate::protocol::send(to.as_fd(), &0u8, &[l.as_raw_fd()])
                    .step(|| "hand over the Runtime API listener".into())
            });
        if let Err(e) = sent {
            fail(exec_fd, &e);
        }
    }
    let devnull = match open_devnull() {
        Ok(f) => f,
        Err(e) => fail(exec_fd, &e),
    };
    // SAFETY: this process is a copy of the single-threaded helper, so fork is safe; the child
    // only runs `runtime`, which ends in execve or _exit.
    match unsafe { nix::unistd::fork() } {
        Err(e) => fail(exec_fd, &StepError::new("fork the runtime", e as i32)),
        Ok(nix::unistd::ForkResult::Child) => runtime(req, &fds, &devnull, filters, landlock),
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(devnull);
            let status = fds.status.as_raw_fd();
            drop(fds.log);
            drop(fds.exec);
            drop(fds.listener_to);
            drop(fds.passed);
            close_all_but(status);
            supervise(child, status)
        }
    }
}

/// A pre-started environment's init (see the module's documentation). `sock` is its end of a
/// socket pair whose other end the daemon holds: a failure to get ready goes there, the
/// [`Take`] comes from there. Never returns.
pub(crate) fn zygote(
    req: &PrestartRequest,
    sock: OwnedFd,
    filters: Option<&Filters>,
    landlock: bool,
    lifeline: &Lifeline,
) -> ! {
    // Die with the helper.
    match lifeline.hold() {
        Ok(true) => {}
        Ok(false) => exit_now(0),
        Err(e) => report(&sock, &e),
    }
    // Nothing of the helper's (its socket to the daemon, other inits' sockets, the lifeline)
    // stays here; 0, 1 and 2 stay open so that no descriptor made later takes their numbers.
    close_all_but_stdio_and(sock.as_raw_fd());
    if let Err(e) = get_ready(req) {
        report(&sock, &e);
    }
    let (ours, theirs) = match nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::SeqPacket,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    ) {
        Ok(pair) => pair,
        Err(e) => report(&sock, &StepError::new("socketpair", e as i32)),
    };
    // SAFETY: this process is a copy of the single-threaded helper, so fork is safe; the child
    // only runs `waiting_runtime`, which ends in execve or _exit.
    match unsafe { nix::unistd::fork() } {
        Err(e) => report(&sock, &StepError::new("fork the runtime", e as i32)),
        Ok(nix::unistd::ForkResult::Child) => {
            drop((sock, ours));
            waiting_runtime(req, theirs, filters, landlock)
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(theirs);
            taken(req, sock, ours, child)
        }
    }
}

/// Report a failure to get ready on `sock` (where whoever takes the environment finds it) and
/// exit.
fn report(sock: &OwnedFd, e: &StepError) -> ! {
    let _ = protocol::send_bytes(sock.as_fd(), &e.encode(), &[]);
    exit_now(127)
}

/// Everything a pre-started init does before it waits: the cgroups, `/tmp`, `/proc`, the host
/// name, the pivot into the root and making it read-only.
fn get_ready(req: &PrestartRequest) -> Result<(), StepError> {
    join_cgroups(&req.cgroup_procs)?;
    let root = &req.template.root;
    mount_tmp(&inside(root, Path::new("/tmp")), req.tmp_mb)?;
    mount_proc(&inside(root, Path::new("/proc")))?;
    nix::unistd::sethostname(&req.hostname).step(|| "set the host name".into())?;
    enter_root(root)
}

/// A pre-started init: wait to be taken, attach the function's mounts, hand the rest to the
/// runtime, then supervise it. Never returns.
fn taken(req: &PrestartRequest, sock: OwnedFd, runtime_sock: OwnedFd, runtime: Pid) -> ! {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (len, fds) = match protocol::recv_bytes(sock.as_fd(), &mut buf, MsgFlags::empty()) {
        Ok((len, fds)) if len > 0 => (len, fds),
        // The daemon is gone, or dropped this environment.
        _ => exit_now(0),
    };
    let take: Option<Take> = serde_json::from_slice(&buf[..len]).ok();
    let mut fds = fds.into_iter();
    let (Some(take), Some(log), Some(status), Some(exec)) =
        (take, fds.next(), fds.next(), fds.next())
    else {
        exit_now(0)
    };
    let exec_fd = exec.as_raw_fd();
    let passed = if take.passes_fd { fds.next() } else { None };
    if take.passes_fd && passed.is_none() {
        let e = StepError::new("a take without the descriptor it passes", libc::EINVAL);
        fail(exec_fd, &e.retry());
    }
    let mounts: Vec<OwnedFd> = fds.collect();
    if mounts.len() != take.targets.len() {
        fail(
            exec_fd,
            &StepError::new("mounts without targets", libc::EINVAL).retry(),
        );
    }
    for (mount, target) in mounts.iter().zip(&take.targets) {
        if let Err(e) = attach(mount, target) {
            let e = StepError::new(format!("attach {}", target.display()), e as i32);
            fail(exec_fd, &e.retry());
        }
    }
    drop(mounts);
    if take.tmp_mb != req.tmp_mb {
        let resized = mount(
            None::<&str>,
            "/tmp",
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size={}m", take.tmp_mb).as_str()),
        );
        if let Err(e) = resized {
            fail(exec_fd, &StepError::new("resize /tmp", e as i32).retry());
        }
    }
    let mut to_runtime = vec![log.as_raw_fd(), exec.as_raw_fd()];
    to_runtime.extend(passed.as_ref().map(AsRawFd::as_raw_fd));
    let handed = protocol::send_bytes(runtime_sock.as_fd(), &buf[..len], &to_runtime);
    if let Err(e) = handed {
        // The runtime is gone: it says why if a step of its own failed.
        let mut why = vec![0u8; 4096];
        let e = match protocol::recv_bytes(runtime_sock.as_fd(), &mut why, MsgFlags::MSG_DONTWAIT) {
            Ok((n, _)) if n > 0 => StepError::decode(&why[..n]),
            _ => StepError::new("the waiting runtime is gone", e as i32),
        };
        fail(exec_fd, &e.retry());
    }
    let status_fd = status.as_raw_fd();
    drop((log, exec, passed, sock, runtime_sock, buf));
    close_all_but(status_fd);
    supervise(runtime, status_fd)
}

/// A pre-started environment's runtime: drop every privilege and restrict itself, wait for the
/// [`Take`], place stdio, exec. Never returns.
fn waiting_runtime(
    req: &PrestartRequest,
    sock: OwnedFd,
    filters: Option<&Filters>,
    landlock: bool,
) -> ! {
    let ready = reset_signals().and_then(|()| {
        let devnull = open_devnull()?;
        // SAFETY: dup2 onto 0, which this process owns; the source stays open until dropped.
        if unsafe { libc::dup2(devnull.as_raw_fd(), 0) } < 0 {
            return Err(StepError::new("place stdin", Errno::last_raw()));
        }
        restrict(req.uid, req.gid, req.nofile, filters, landlock)
    });
    if let Err(e) = ready {
        report(&sock, &e);
    }
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (len, fds) = match protocol::recv_bytes(sock.as_fd(), &mut buf, MsgFlags::empty()) {
        Ok((len, fds)) if len > 0 => (len, fds),
        _ => exit_now(0),
    };
    let mut fds = fds.into_iter();
    let (Some(log), Some(exec_pipe)) = (fds.next(), fds.next()) else {
        exit_now(127)
    };
    let passed = fds.next();
    let mut exec_fd = exec_pipe.as_raw_fd();
    let take: Take = match serde_json::from_slice(&buf[..len]) {
        Ok(t) => t,
        Err(_) => fail(
            exec_fd,
            &StepError::new("a take the runtime cannot read", libc::EINVAL).retry(),
        ),
    };
    drop(buf);
    if take.passes_fd != passed.is_some() {
        let e = StepError::new("a take without the descriptor it passes", libc::EINVAL);
        fail(exec_fd, &e.retry());
    }
    if let Err(e) = place_output(&log) {
        fail(exec_fd, &e.retry());
    }
    if let Err(e) = chdir(&take.cwd).step(|| format!("chdir {}", take.cwd.display())) {
        fail(exec_fd, &e);
    }
    if let Some(passed) = &passed {
        // Last before the exec (it may move the exec pipe); `sock` (close-on-exec) is not used
        // again: failures go to the exec pipe from here.
        match place_passed(passed, exec_fd) {
            Ok(fd) => exec_fd = fd,
            Err(e) => fail(exec_fd, &e.retry()),
        }
    }
    let e = exec(exec_fd, &take.program, &take.args, &take.env);
    fail(exec_fd, &e)
}

/// `_exit`: leave at once, without running anything of the helper's (no destructors, no
/// flushing of buffers copied from it).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit only ends the process.
    unsafe { libc::_exit(code) }
}

/// Report `e` on the exec pipe and exit.
fn fail(exec_fd: RawFd, e: &StepError) -> ! {
    // SAFETY: `exec_fd` is open for the whole life of this process.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(exec_fd) };
    let _ = nix::unistd::write(fd, &e.encode());
    exit_now(127)
}

/// Close every descriptor but `keep` (init holds nothing else: not the log pipe, not the
/// helper's socket).
fn close_all_but(keep: RawFd) {
    // SAFETY: close_range only closes descriptors; nothing in this process uses the ones closed
    // (init only writes to `keep`, which is at least 3: 0, 1 and 2 were open in the helper).
    unsafe {
        libc::syscall(libc::SYS_close_range, 0u32, (keep - 1).max(0) as u32, 0u32);
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
    }
}

/// Close every descriptor but 0, 1, 2 and `keep` (at least 3).
fn close_all_but_stdio_and(keep: RawFd) {
    // SAFETY: close_range only closes descriptors; this process uses none of those closed (it is
    // a copy of the helper that only keeps `keep` and stdio).
    unsafe {
        if keep > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (keep - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32);
    }
}

/// Wait for the runtime; write its status (`C` + exit code or `S` + signal, little-endian i32)
/// and exit, which kills the rest of the pid namespace.
fn supervise(runtime: Pid, status_fd: RawFd) -> ! {
    loop {
        let (kind, value) = match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == runtime => (b'C', code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == runtime => (b'S', sig as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => exit_now(0),
        };
        let mut msg = [kind, 0, 0, 0, 0];
        msg[1..].copy_from_slice(&value.to_le_bytes());
        // SAFETY: `status_fd` is the one descriptor init kept open.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(status_fd) };
        let _ = nix::unistd::write(fd, &msg);
        exit_now(0)
    }
}

/// Build the root template in the helper's own mount namespace (once): a tmpfs holding the
/// system directories' read-only binds, the symbolic links, a complete `/dev` and the mount
/// points every environment uses. Environments' mount namespaces are copies of the helper's,
/// so each starts with this tree and only adds its own mounts.
pub(crate) fn build_template(template: &Template) -> Result<(), StepError> {
    let root = &template.root;
    // A previous template (other system mounts) goes first.
    while umount2(root, MntFlags::MNT_DETACH).is_ok() {}
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=1m"),
    )
    .step(|| format!("mount the root tmpfs on {}", root.display()))?;
    for (link, target) in &template.symlinks {
        let at = inside(root, link);
        std::os::unix::fs::symlink(target, &at).step(|| format!("symlink {}", link.display()))?;
    }
    for m in &template.system_mounts {
        let at = inside(root, &m.target);
        mount_point(&m.source, &at)?;
        bind(&m.source, &at, !m.writable)
            .step(|| format!("bind {} on {}", m.source.display(), m.target.display()))?;
    }
    for dir in ["/tmp", "/proc", "/var/task", "/var/runtime", "/opt"] {
        fs::create_dir_all(inside(root, Path::new(dir))).step(|| format!("mount point {dir}"))?;
    }
    build_dev(&inside(root, Path::new("/dev")))
}

/// Make the mount point for `source` at `at` (a directory or an empty file), if missing.
pub(crate) fn mount_point(source: &Path, at: &Path) -> Result<(), StepError> {
    let is_dir = fs::metadata(source)
        .step(|| format!("mount {}", source.display()))?
        .is_dir();
    if is_dir {
        if !at.is_dir() {
            fs::create_dir_all(at).step(|| format!("mount point {}", at.display()))?;
        }
    } else {
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).step(|| format!("mount point {}", at.display()))?;
        }
        if !at.exists() {
            fs::File::create(at).step(|| format!("mount point {}", at.display()))?;
        }
    }
    Ok(())
}

/// Join the cgroups, add this environment's own mounts to its copy of the template, and pivot
/// into it; on return the process is in its root.
fn build(req: &SpawnRequest) -> Result<(), StepError> {
    join_cgroups(&req.cgroup_procs)?;
    // Mount events do not flow back to the helper or the host: the helper's namespace is a
    // slave of the host's, and this one is a copy of it.
    let root = &req.template.root;
    for m in &req.mounts {
        // The helper made the mount point before cloning.
        bind(&m.source, &inside(root, &m.target), !m.writable)
            .step(|| format!("bind {} on {}", m.source.display(), m.target.display()))?;
    }
    mount_tmp(&inside(root, Path::new("/tmp")), req.tmp_mb)?;
    mount_proc(&inside(root, Path::new("/proc")))?;
    nix::unistd::sethostname(&req.hostname).step(|| "set the host name".into())?;
    if req.isolated_network {
        loopback_up().step(|| "bring up the loopback interface".into())?;
    }
    enter_root(root)
}

/// Write this process into each cgroup's `cgroup.procs`.
fn join_cgroups(procs_files: &[PathBuf]) -> Result<(), StepError> {
    for procs in procs_files {
        fs::write(procs, "0").step(|| format!("join cgroup {}", procs.display()))?;
    }
    Ok(())
}

/// The private `/tmp`: a tmpfs of `size_mb`.
fn mount_tmp(at: &Path, size_mb: u64) -> Result<(), StepError> {
    mount(
        Some("tmpfs"),
        at,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("mode=1777,size={size_mb}m").as_str()),
    )
    .step(|| "mount /tmp".into())
}

/// This pid namespace's `/proc`.
fn mount_proc(at: &Path) -> Result<(), StepError> {
    mount(
        Some("proc"),
        at,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .step(|| "mount /proc".into())
}

/// Pivot into `root`, detach the host's tree, and make the root read-only (for this
/// environment only: the template's tmpfs stays writable for the helper).
fn enter_root(root: &Path) -> Result<(), StepError> {
    chdir(root).step(|| "enter the root".into())?;
    pivot_root(".", ".").step(|| "pivot_root".into())?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detach the host's root".into())?;
    chdir("/").step(|| "chdir /".into())?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .step(|| "make the root read-only".into())
}

/// A detached copy of the mount tree at `source` (`open_tree`), read-only unless `writable`,
/// nosuid, nodev and private (nothing mounted on the host later shows up in it), for
/// [`attach`] to put into a pre-started environment. Made by the helper, which still sees the
/// host's paths. Flags as [`bind`] leaves them.
pub(crate) fn detached_bind(source: &Path, writable: bool) -> nix::Result<OwnedFd> {
    let path = std::ffi::CString::new(source.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as u32;
    // SAFETY: open_tree takes a directory descriptor, a NUL-terminated path that outlives the
    // call and flags; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let fd = Errno::result(fd)?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let mut set = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
    if !writable {
        set |= libc::MOUNT_ATTR_RDONLY;
    }
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: libc::MOUNT_ATTR_NOEXEC,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `size_of::<mount_attr>()` bytes from `attr`, which lives
    // across the call; the empty path names `tree` itself (AT_EMPTY_PATH).
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    Errno::result(r)?;
    Ok(tree)
}

/// Attach a detached mount made by [`detached_bind`] on `target` (`move_mount`).
fn attach(tree: &OwnedFd, target: &Path) -> nix::Result<()> {
    let target =
        std::ffi::CString::new(target.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: move_mount with an empty source path and MOVE_MOUNT_F_EMPTY_PATH moves the tree
    // `tree` refers to; both paths are NUL-terminated and outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(r).map(|_| ())
}

/// Bind `source` on `target`, then remount read-only, nosuid, nodev when asked.
fn bind(source: &Path, target: &Path, read_only: bool) -> nix::Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
}

/// A minimal `/dev`: null, zero, full, random, urandom, tty and the `fd`/`std*` links.
fn build_dev(dev: &Path) -> Result<(), StepError> {
    fs::create_dir_all(dev).step(|| "mount point /dev".into())?;
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755,size=64k"),
    )
    .step(|| "mount /dev".into())?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let at = dev.join(name);
        fs::File::create(&at).step(|| format!("create /dev/{name}"))?;
        mount(
            Some(&host),
            &at,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .step(|| format!("bind /dev/{name}"))?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link)).step(|| format!("link /dev/{link}"))?;
    }
    mount(
        None::<&str>,
        dev,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .step(|| "make /dev read-only".into())
}

/// `ip link set lo up` in a new network namespace.
fn loopback_up() -> nix::Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads an ifreq, which `req` is, for the interface it names.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    Errno::result(r).map(|_| ())
}

/// The runtime process: place stdio, drop privileges, restrict, exec. Never returns: a failure
/// is reported on the exec pipe, wherever placing the passed descriptor moved it.
fn runtime(
    req: &SpawnRequest,
    fds: &ChildFds,
    devnull: &OwnedFd,
    filters: Option<&Filters>,
    landlock: bool,
) -> ! {
    match prepare_runtime(req, fds, devnull, filters, landlock) {
        Err(e) => fail(fds.exec.as_raw_fd(), &e),
        Ok(exec_fd) => {
            let e = exec(exec_fd, &req.program, &req.args, &req.env);
            fail(exec_fd, &e)
        }
    }
}

fn prepare_runtime(
    req: &SpawnRequest,
    fds: &ChildFds,
    devnull: &OwnedFd,
    filters: Option<&Filters>,
    landlock: bool,
) -> Result<RawFd, StepError> {
    reset_signals()?;
    // stdio: /dev/null in, the log pipe out and err.
    // SAFETY: dup2 onto 0, which this process owns; the source stays open.
    if unsafe { libc::dup2(devnull.as_raw_fd(), 0) } < 0 {
        return Err(StepError::new("place stdio", Errno::last_raw()));
    }
    place_output(&fds.log)?;
    chdir(&req.cwd).step(|| format!("chdir {}", req.cwd.display()))?;
    restrict(req.uid, req.gid, req.nofile, filters, landlock)?;
    // The exec pipe must stay open until the exec to report a failing step (it is
    // close-on-exec, as everything else now is). Placing the passed descriptor comes last:
    // it may move the exec pipe, and the caller reports a failure before it on the old one.
    match &fds.passed {
        Some(passed) => place_passed(passed, fds.exec.as_raw_fd()),
        None => Ok(fds.exec.as_raw_fd()),
    }
}

/// Signals: the helper's mask and dispositions must not leak into the function (Rust ignores
/// SIGPIPE in its own processes, and an ignored signal survives execve).
fn reset_signals() -> Result<(), StepError> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .step(|| "reset the signal mask".into())?;
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: restoring the default disposition installs no handler code.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
        }
    }
    Ok(())
}

fn open_devnull() -> Result<OwnedFd, StepError> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .step(|| "open /dev/null".into())
}

/// The log pipe on stdout and stderr; every descriptor from 3 up closes at exec (the status
/// pipe, the helper's socket, ...).
fn place_output(log: &OwnedFd) -> Result<(), StepError> {
    // SAFETY: dup2 onto 1 and 2, which this process owns; the source stays open.
    let r = unsafe {
        [
            libc::dup2(log.as_raw_fd(), 1),
            libc::dup2(log.as_raw_fd(), 2),
        ]
    };
    if r.iter().any(|&x| x < 0) {
        return Err(StepError::new("place stdio", Errno::last_raw()));
    }
    // SAFETY: marking descriptors close-on-exec does not close anything now.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    Ok(())
}

/// Put `passed` at [`PASSED_FD`], open across exec (after [`place_output`], which made
/// everything from 3 up close-on-exec). The exec pipe is moved first if it is there; returns
/// where it is now (on failure it is still where it was). Whatever else this process had at
/// [`PASSED_FD`] is replaced, so a process calling this only execs or exits afterwards (it
/// closes nothing that could now be the passed descriptor).
fn place_passed(passed: &OwnedFd, exec_fd: RawFd) -> Result<RawFd, StepError> {
    let mut exec_fd = exec_fd;
    if exec_fd == PASSED_FD {
        // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor and closes nothing.
        let moved = unsafe { libc::fcntl(exec_fd, libc::F_DUPFD_CLOEXEC, PASSED_FD + 1) };
        if moved < 0 {
            return Err(StepError::new("move the exec pipe", Errno::last_raw()));
        }
        exec_fd = moved;
    }
    // SAFETY: dup2 onto PASSED_FD replaces what was there (see above), or F_SETFD clears
    // close-on-exec on the passed descriptor itself; neither touches memory.
    let placed = unsafe {
        if passed.as_raw_fd() == PASSED_FD {
            libc::fcntl(PASSED_FD, libc::F_SETFD, 0)
        } else {
            libc::dup2(passed.as_raw_fd(), PASSED_FD)
        }
    };
    if placed < 0 {
        return Err(StepError::new(
            "place the passed descriptor",
            Errno::last_raw(),
        ));
    }
    Ok(exec_fd)
}

/// What the runtime gives up before running anything of the function's: its own session, the
/// limits, every capability, root, new privileges; then Landlock and seccomp.
fn restrict(
    uid: u32,
    gid: u32,
    nofile: u64,
    filters: Option<&Filters>,
    landlock: bool,
) -> Result<(), StepError> {
    nix::unistd::setsid().step(|| "setsid".into())?;
    setrlimit(Resource::RLIMIT_NOFILE, nofile, nofile).step(|| "limit open files".into())?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0).step(|| "disable core dumps".into())?;
    // Capabilities: drop the bounding set while still privileged, then leave root (which
    // clears the permitted and effective sets).
    for cap in 0..=63 {
        // SAFETY: PR_CAPBSET_DROP takes an integer; an unknown capability is EINVAL.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if r < 0 && Errno::last() == Errno::EINVAL {
            break;
        }
    }
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    setgroups(&[gid]).step(|| "set groups".into())?;
    setresgid(gid, gid, gid).step(|| "set gid".into())?;
    setresuid(uid, uid, uid).step(|| "set uid".into())?;
    nix::sys::prctl::set_no_new_privs().step(|| "no_new_privs".into())?;
    if landlock {
        restrict_paths().map_err(|e| StepError::new(format!("landlock: {e}"), libc::EPERM))?;
    }
    if let Some(filters) = filters {
        filters
            .apply()
            .map_err(|e| StepError::new(e.to_string(), libc::EPERM))?;
    }
    Ok(())
}

/// Landlock: read and execute everywhere in the (already minimal) root, write only in `/tmp`
/// and to the device files.
fn restrict_paths() -> Result<(), landlock::RulesetError> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, ABI,
    };
    let abi = ABI::V3;
    Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi)))?
        .add_rules(path_beneath_rules(["/tmp"], AccessFs::from_all(abi)))?
        .add_rules(path_beneath_rules(
            ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"],
            AccessFs::from_read(abi) | AccessFs::WriteFile,
        ))?
        .restrict_self()?;
    Ok(())
}

/// What the runtime writes on the exec pipe right before `execve`: end of file after it means
/// the program runs, end of file without it that the environment died first.
const EXEC_MARK: u8 = 0;

/// How starting the program went, from what the exec pipe carried until its end of file.
#[derive(Debug)]
pub(crate) enum ExecReport {
    /// The program runs.
    Ran,
    /// A step failed.
    Failed(StepError),
    /// The environment died before its program ran (killed, say).
    Died,
}

impl ExecReport {
    pub(crate) fn parse(bytes: &[u8]) -> ExecReport {
        match bytes {
            [] => ExecReport::Died,
            [EXEC_MARK] => ExecReport::Ran,
            [EXEC_MARK, rest @ ..] => ExecReport::Failed(StepError::decode(rest)),
            _ => ExecReport::Failed(StepError::decode(bytes)),
        }
    }
}

/// execve the program (after the mark on `exec_fd`); returns the failure.
fn exec(exec_fd: RawFd, program: &Path, args: &[String], env: &[(String, String)]) -> StepError {
    let cstr = |b: &[u8]| std::ffi::CString::new(b.to_vec());
    let Ok(path) = cstr(program.as_os_str().as_bytes()) else {
        return StepError::new("exec: program path has a NUL byte", libc::EINVAL);
    };
    let mut argv = vec![path.clone()];
    for a in args {
        match cstr(a.as_bytes()) {
            Ok(c) => argv.push(c),
            Err(_) => return StepError::new("exec: argument has a NUL byte", libc::EINVAL),
        }
    }
    let mut envp = Vec::new();
    for (k, v) in env {
        match cstr(format!("{k}={v}").as_bytes()) {
            Ok(c) => envp.push(c),
            Err(_) => return StepError::new("exec: variable has a NUL byte", libc::EINVAL),
        }
    }
    // SAFETY: `exec_fd` is open until the exec closes it.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(exec_fd) };
    if let Err(e) = nix::unistd::write(fd, &[EXEC_MARK]) {
        return StepError::new("write on the exec pipe", e as i32);
    }
    let e = nix::unistd::execve(&path, &argv, &envp).unwrap_err();
    StepError::new(format!("exec {}", program.display()), e as i32)
}
