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
//! Both run in a copy of the single-threaded helper, so allocating here is safe. A failing step
//! writes `errno` and a description to the exec pipe (close-on-exec: the helper reads end of
//! file when the program started) and exits.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{chdir, pivot_root, setgroups, setresgid, setresuid, Gid, Pid, Uid};

use crate::protocol::SpawnRequest;
use crate::seccomp::Filters;

/// A step that failed: what, and the OS error.
#[derive(Debug)]
pub(crate) struct StepError {
    pub(crate) errno: i32,
    pub(crate) what: String,
}

impl StepError {
    fn new(what: impl Into<String>, errno: i32) -> StepError {
        StepError {
            errno,
            what: what.into(),
        }
    }

    /// `errno` then the text, as the helper parses it.
    pub(crate) fn encode(&self) -> Vec<u8> {
        format!(
            "{}\n{}: {}",
            self.errno,
            self.what,
            Errno::from_raw(self.errno).desc()
        )
        .into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8]) -> (i32, String) {
        let text = String::from_utf8_lossy(bytes);
        match text.split_once('\n') {
            Some((n, msg)) => (n.parse().unwrap_or(0), msg.to_string()),
            None => (0, text.to_string()),
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
) -> ! {
    let exec_fd = fds.exec.as_raw_fd();
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
    let devnull = match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        Ok(f) => OwnedFd::from(f),
        Err(e) => fail(
            exec_fd,
            &StepError::new("open /dev/null", e.raw_os_error().unwrap_or(0)),
        ),
    };
    // SAFETY: this process is a copy of the single-threaded helper, so fork is safe; the child
    // only runs `runtime`, which ends in execve or _exit.
    match unsafe { nix::unistd::fork() } {
        Err(e) => fail(exec_fd, &StepError::new("fork the runtime", e as i32)),
        Ok(nix::unistd::ForkResult::Child) => {
            let e = runtime(req, &fds, &devnull, filters, landlock);
            fail(exec_fd, &e)
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(devnull);
            let status = fds.status.as_raw_fd();
            drop(fds.log);
            drop(fds.exec);
            drop(fds.listener_to);
            close_all_but(status);
            supervise(child, status)
        }
    }
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
pub(crate) fn build_template(req: &SpawnRequest) -> Result<(), StepError> {
    let root = &req.root;
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
    for (link, target) in &req.symlinks {
        let at = inside(root, link);
        std::os::unix::fs::symlink(target, &at).step(|| format!("symlink {}", link.display()))?;
    }
    for m in &req.system_mounts {
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
    // Die with the helper. (getppid() is 0 in a new pid namespace, so whether the helper died
    // before this line cannot be checked here; it is waiting on this spawn, so it is alive
    // unless it was killed in these few microseconds.)
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .step(|| "set the parent-death signal".into())?;
    for procs in &req.cgroup_procs {
        fs::write(procs, "0").step(|| format!("join cgroup {}", procs.display()))?;
    }
    // Mount events do not flow back to the helper or the host: the helper's namespace is a
    // slave of the host's, and this one is a copy of it.
    let root = &req.root;
    for m in &req.mounts {
        // The helper made the mount point before cloning.
        bind(&m.source, &inside(root, &m.target), !m.writable)
            .step(|| format!("bind {} on {}", m.source.display(), m.target.display()))?;
    }
    mount(
        Some("tmpfs"),
        &inside(root, Path::new("/tmp")),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("mode=1777,size={}m", req.tmp_mb).as_str()),
    )
    .step(|| "mount /tmp".into())?;
    mount(
        Some("proc"),
        &inside(root, Path::new("/proc")),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .step(|| "mount /proc".into())?;
    nix::unistd::sethostname(&req.hostname).step(|| "set the host name".into())?;
    if req.isolated_network {
        loopback_up().step(|| "bring up the loopback interface".into())?;
    }
    chdir(root).step(|| "enter the root".into())?;
    pivot_root(".", ".").step(|| "pivot_root".into())?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detach the host's root".into())?;
    chdir("/").step(|| "chdir /".into())?;
    // Read-only for this environment only (the template's tmpfs stays writable for the helper).
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
    .step(|| "make the root read-only".into())?;
    Ok(())
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

/// The runtime process: place stdio, drop privileges, restrict, exec. Returns only on failure.
fn runtime(
    req: &SpawnRequest,
    fds: &ChildFds,
    devnull: &OwnedFd,
    filters: Option<&Filters>,
    landlock: bool,
) -> StepError {
    match prepare_runtime(req, fds, devnull, filters, landlock) {
        Err(e) => e,
        Ok(()) => unreachable_exec(req),
    }
}

fn prepare_runtime(
    req: &SpawnRequest,
    fds: &ChildFds,
    devnull: &OwnedFd,
    filters: Option<&Filters>,
    landlock: bool,
) -> Result<(), StepError> {
    // Signals: the helper's mask and dispositions must not leak into the function (Rust
    // ignores SIGPIPE in its own processes, and an ignored signal survives execve).
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .step(|| "reset the signal mask".into())?;
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: restoring the default disposition installs no handler code.
            let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
        }
    }
    // stdio: /dev/null in, the log pipe out and err.
    // SAFETY: dup2 onto 0, 1 and 2, which this process owns; the sources stay open.
    let r = unsafe {
        [
            libc::dup2(devnull.as_raw_fd(), 0),
            libc::dup2(fds.log.as_raw_fd(), 1),
            libc::dup2(fds.log.as_raw_fd(), 2),
        ]
    };
    if r.iter().any(|&x| x < 0) {
        return Err(StepError::new("place stdio", Errno::last_raw()));
    }
    // Everything else closes at exec (the status pipe, the helper's socket, ...); the exec pipe
    // must stay open until then to report a failing step.
    // SAFETY: marking descriptors close-on-exec does not close anything now.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    let _ = fds.exec.as_fd();
    nix::unistd::setsid().step(|| "setsid".into())?;
    setrlimit(Resource::RLIMIT_NOFILE, req.nofile, req.nofile)
        .step(|| "limit open files".into())?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0).step(|| "disable core dumps".into())?;
    chdir(&req.cwd).step(|| format!("chdir {}", req.cwd.display()))?;
    // Capabilities: drop the bounding set while still privileged, then leave root (which
    // clears the permitted and effective sets).
    for cap in 0..=63 {
        // SAFETY: PR_CAPBSET_DROP takes an integer; an unknown capability is EINVAL.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if r < 0 && Errno::last() == Errno::EINVAL {
            break;
        }
    }
    let (uid, gid) = (Uid::from_raw(req.uid), Gid::from_raw(req.gid));
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

/// execve the program; returns the failure.
fn unreachable_exec(req: &SpawnRequest) -> StepError {
    let cstr = |b: &[u8]| std::ffi::CString::new(b.to_vec());
    let Ok(program) = cstr(req.program.as_os_str().as_bytes()) else {
        return StepError::new("exec: program path has a NUL byte", libc::EINVAL);
    };
    let mut argv = vec![program.clone()];
    for a in &req.args {
        match cstr(a.as_bytes()) {
            Ok(c) => argv.push(c),
            Err(_) => return StepError::new("exec: argument has a NUL byte", libc::EINVAL),
        }
    }
    let mut envp = Vec::new();
    for (k, v) in &req.env {
        match cstr(format!("{k}={v}").as_bytes()) {
            Ok(c) => envp.push(c),
            Err(_) => return StepError::new("exec: variable has a NUL byte", libc::EINVAL),
        }
    }
    let e = nix::unistd::execve(&program, &argv, &envp).unwrap_err();
    StepError::new(format!("exec {}", req.program.display()), e as i32)
}
