//! The namespace level, end to end: a real helper process, real namespaces, cgroups, mounts.
//! These tests need root and a kernel with namespaces (CI has both); they fail loudly, rather
//! than pass, when the sandbox falls back to the process level.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lamina_sandbox::{
    Exit, HelperCommand, Isolation, LogPipe, Mount, Network, Sandbox, SandboxConfig, SandboxSpec,
};
use tokio::io::AsyncReadExt;

fn sandbox(dir: &Path) -> Sandbox {
    let s = Sandbox::start(&SandboxConfig {
        isolation: Isolation::Namespace,
        helper: HelperCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_lamina-sandbox-helper")),
            args: vec![],
        },
        state_dir: dir.join("sandbox"),
        favor_dynamic_changes: false,
    });
    assert_eq!(
        s.isolation(),
        Isolation::Namespace,
        "the namespace sandbox is not available here: {}",
        s.reason()
    );
    s
}

fn sh(script: &str, code: &Path) -> SandboxSpec {
    let mut spec = SandboxSpec::new("/bin/sh", "/var/task");
    spec.args = vec!["-c".into(), script.into()];
    spec.env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    spec.isolation = Isolation::Namespace;
    spec.mounts = vec![Mount {
        source: code.to_path_buf(),
        target: "/var/task".into(),
        writable: false,
    }];
    spec
}

async fn output(script: &str, sandbox: &Sandbox, code: &Path) -> (Exit, String) {
    let (mut p, mut pipe) = sandbox.spawn(&sh(script, code)).await.unwrap();
    let out = read_all(&mut pipe).await;
    (p.wait().await, out)
}

/// Everything the environment writes, until it closes its output (20 s at most).
async fn read_all(pipe: &mut LogPipe) -> String {
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(20), pipe.read_to_string(&mut out))
        .await
        .expect("the environment finished")
        .unwrap();
    out
}

fn code_dir(dir: &Path) -> PathBuf {
    let code = dir.join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("hello.txt"), "from the package\n").unwrap();
    code
}

#[tokio::test]
async fn the_view_is_minimal_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(dir.path());
    let code = code_dir(dir.path());
    let script = "id -u; cat /var/task/hello.txt; ls /; \
        touch /var/task/x 2>/dev/null && echo WROTE-TASK; \
        touch /usr/x 2>/dev/null && echo WROTE-USR; \
        echo hi > /tmp/t && cat /tmp/t; \
        ls /proc | grep -c '^[0-9]'; \
        cat /etc/shadow 2>/dev/null && echo READ-SHADOW; \
        echo done";
    let (exit, out) = output(script, &sb, &code).await;
    assert_eq!(exit, Exit::Code(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "993", "{out}");
    assert_eq!(lines[1], "from the package");
    assert!(!out.contains("WROTE"), "{out}");
    assert!(!out.contains("READ-SHADOW"), "{out}");
    assert!(out.contains("\nhi\n"), "{out}");
    // Only what the root was built from: no home, no data directory, no root's files.
    for absent in ["root\n", "home\n", "srv\n", "work\n"] {
        assert!(!out.contains(absent), "{absent:?} visible: {out}");
    }
    assert!(out.ends_with("done\n"), "{out}");
    host_tree_is_hidden(&sb, &code, dir.path()).await;
}

/// The host's directory tree (`host_dir`, this test's temp dir) is not visible inside.
async fn host_tree_is_hidden(sb: &Sandbox, code: &Path, host_dir: &Path) {
    let script = format!("ls {} 2>&1 || echo MISSING", host_dir.display());
    let (_, out) = output(&script, sb, code).await;
    assert!(out.contains("MISSING"), "{out}");
}

#[tokio::test]
async fn own_pid_namespace_and_whole_tree_killed() {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(dir.path());
    let code = code_dir(dir.path());
    // The shell is pid 2 (init is 1); a background sleep is killed with the environment.
    let (mut p, mut pipe) = sb
        .spawn(&sh("echo $$; sleep 600 & echo started; wait", &code))
        .await
        .unwrap();
    let mut buf = vec![0u8; 64];
    let mut got = String::new();
    while !got.contains("started") {
        let n = pipe.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    assert!(got.starts_with("2\n"), "{got}");
    let cg_procs = p.cgroup().map(|c| c.procs_files());
    p.kill();
    assert_eq!(p.wait().await, Exit::Signal(9));
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(10), pipe.read_to_string(&mut rest))
        .await
        .expect("every process holding the log pipe is gone")
        .unwrap();
    // A killed process closes its files before it leaves its cgroups: wait for that too.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    for f in cg_procs.unwrap_or_default() {
        loop {
            let left = std::fs::read_to_string(&f).unwrap_or_default();
            if left.trim().is_empty() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} still has {left}",
                f.display()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test]
async fn exit_status_and_missing_program() {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(dir.path());
    let code = code_dir(dir.path());
    let (exit, _) = output("exit 7", &sb, &code).await;
    assert_eq!(exit, Exit::Code(7));
    let (exit, _) = output("kill -SEGV $$", &sb, &code).await;
    assert_eq!(exit, Exit::Signal(11));
    let mut spec = sh("", &code);
    spec.program = "/var/task/bootstrap".into();
    let err = sb.spawn(&spec).await.unwrap_err();
    assert!(
        matches!(err, lamina_sandbox::SpawnError::NotFound { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn memory_limit_kills_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(dir.path());
    let code = code_dir(dir.path());
    let mut spec = sh(
        "dd if=/dev/zero of=/dev/null bs=200M count=1; echo survived",
        &code,
    );
    spec.memory_mb = 64;
    let (mut p, mut pipe) = sb.spawn(&spec).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), pipe.read_to_string(&mut out)).await;
    let exit = p.wait().await;
    assert!(p.out_of_memory(), "exit {exit:?}, output {out}");
    let peak = p.peak_memory_bytes().unwrap();
    assert!(peak <= 64 * 1024 * 1024 + 1024 * 1024, "peak {peak}");
}

#[tokio::test]
async fn tmp_is_private_and_sized() {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(dir.path());
    let code = code_dir(dir.path());
    let mut spec = sh(
        "ls -A /tmp | wc -l; echo a > /tmp/mine; dd if=/dev/zero of=/tmp/fill bs=1M count=20 2>&1 | grep -o 'No space left on device'",
        &code,
    );
    spec.tmp_mb = 8;
    spec.memory_mb = 256;
    let (mut p, mut pipe) = sb.spawn(&spec).await.unwrap();
    let mut out = String::new();
    pipe.read_to_string(&mut out).await.unwrap();
    p.wait().await;
    assert!(out.starts_with("0\n"), "{out}");
    assert!(out.contains("No space left on device"), "{out}");
    // A second environment does not see the first one's /tmp.
    let (_, out) = output("ls /tmp", &sb, &code).await;
    assert!(!out.contains("mine"), "{out}");
}

#[tokio::test]
async fn freeze_stops_the_clock_of_an_idle_environment() {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(dir.path());
    let code = code_dir(dir.path());
    let mut spec = sh("while :; do :; done", &code);
    spec.cpu_millis = 1000;
    let (mut p, _pipe) = sb.spawn(&spec).await.unwrap();
    if !p.freeze() {
        panic!("no freezer on this host");
    }
    let cpu = |pid: u32| -> u64 {
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
        let child: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    // Once the kernel reports the freeze done, the busy loop must not gain CPU time.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !p.cgroup().is_some_and(|c| c.is_frozen()) {
        assert!(std::time::Instant::now() < deadline, "never frozen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = cpu(p.pid());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cpu(p.pid()), before, "a frozen environment used CPU");
    p.thaw();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while cpu(p.pid()) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "thawed but not running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.kill();
    p.wait().await;
}

#[tokio::test]
async fn isolated_network_has_only_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(dir.path());
    let code = code_dir(dir.path());
    let mut spec = sh(
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; \
         curl -s http://127.0.0.1:9001/next; echo",
        &code,
    );
    spec.network = Network::None;
    let (mut p, mut pipe) = sb.spawn(&spec).await.unwrap();
    // The Runtime API's listener was made inside the namespace; the host side serves it.
    let listener = p
        .take_runtime_api_listener()
        .expect("a listener from inside");
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).unwrap();
        let request = String::from_utf8_lossy(&buf[..n]).to_string();
        conn.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 9\r\n\r\nfrom-host")
            .unwrap();
        request
    });
    let mut out = String::new();
    pipe.read_to_string(&mut out).await.unwrap();
    assert_eq!(p.wait().await, Exit::Code(0));
    assert_eq!(out, "lo\nfrom-host\n");
    assert!(server.join().unwrap().starts_with("GET /next HTTP/1.1"));
}

/// Wait until `n` pre-started environments are ready (the sandbox makes them in the
/// background).
async fn prestarted(sb: &Sandbox, n: usize) -> Vec<u32> {
    sb.refill_now();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ready = sb.prestarted();
        if ready.len() >= n {
            return ready;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} pre-started environments after 10 s",
            ready.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_prestarted_environment_is_as_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(dir.path());
    let code = code_dir(dir.path());
    prestarted(&sb, 2).await;
    let script = "echo $$; id -u; id -g; cat /var/task/hello.txt; \
        grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d ' \\t'; \
        ls /proc | grep '^[0-9]' | sort -n | head -1; \
        touch /var/task/x 2>/dev/null && echo WROTE-TASK; \
        touch /usr/x 2>/dev/null && echo WROTE-USR; \
        touch /x 2>/dev/null && echo WROTE-ROOT; \
        cat /etc/shadow 2>/dev/null && echo READ-SHADOW; \
        ls / | tr '\\n' ' '; echo; \
        hostname; ulimit -n; \
        ls -A /tmp | wc -l; \
        dd if=/dev/zero of=/tmp/fill bs=1M count=20 2>&1 | grep -o 'No space left on device'; \
        echo done";
    let mut spec = sh(script, &code);
    spec.tmp_mb = 8;
    let (mut p, mut pipe) = sb.spawn(&spec).await.unwrap();
    assert!(p.prestarted(), "the pool had one ready");
    let out = read_all(&mut pipe).await;
    assert_eq!(p.wait().await, Exit::Code(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    // The shell is pid 2 in its own pid namespace (init is 1), as the sandbox user.
    assert_eq!(
        &lines[..4],
        ["2", "993", "990", "from the package"],
        "{out}"
    );
    for expected in [
        "CapPrm:0000000000000000",
        "CapEff:0000000000000000",
        "CapBnd:0000000000000000",
        "NoNewPrivs:1",
        "Seccomp:2",
    ] {
        assert!(lines.contains(&expected), "{expected} missing: {out}");
    }
    assert!(lines.contains(&"1"), "no init at pid 1: {out}");
    for bad in ["WROTE", "READ-SHADOW"] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    let root = lines.iter().find(|l| l.contains("var")).unwrap();
    for absent in ["home", "root", "srv", "work", "sys"] {
        assert!(
            !root.split(' ').any(|e| e == absent),
            "/{absent} visible: {root}"
        );
    }
    assert!(lines.contains(&"localhost"), "{out}");
    assert!(lines.contains(&"1024"), "open files limit: {out}");
    // An empty /tmp of the size asked for (the pre-started one had another).
    assert!(out.contains("\n0\nNo space left on device\n"), "{out}");
    assert!(out.ends_with("done\n"), "{out}");
    host_tree_is_hidden(&sb, &code, dir.path()).await;
}

#[tokio::test]
async fn each_prestarted_environment_gets_its_own_code_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(dir.path());
    let first = code_dir(dir.path());
    let second = dir.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(second.join("other.txt"), "the second package\n").unwrap();
    prestarted(&sb, 2).await;
    let show = "ls /var/task; cat /var/task/*.txt";
    // A function above the pre-started cgroups' 128 MB: its limit grows.
    let mut big = sh(
        &format!(
            "{show}; dd if=/dev/zero of=/dev/null bs=150M count=1 2>/dev/null && echo survived"
        ),
        &first,
    );
    big.memory_mb = 256;
    let (mut p, mut pipe) = sb.spawn(&big).await.unwrap();
    assert!(p.prestarted());
    let mut out = String::new();
    pipe.read_to_string(&mut out).await.unwrap();
    assert_eq!(p.wait().await, Exit::Code(0), "{out}");
    assert_eq!(out, "hello.txt\nfrom the package\nsurvived\n");
    // Another function, in the other pre-started environment, below them: its limit shrinks.
    let mut small = sh(show, &second);
    small.mounts[0].source = second.clone();
    small.memory_mb = 64;
    small.args = vec![
        "-c".into(),
        format!("{show}; dd if=/dev/zero of=/dev/null bs=200M count=1; echo survived").into(),
    ];
    let (mut p, mut pipe) = sb.spawn(&small).await.unwrap();
    assert!(p.prestarted());
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), pipe.read_to_string(&mut out)).await;
    let exit = p.wait().await;
    assert!(out.starts_with("other.txt\nthe second package\n"), "{out}");
    assert!(p.out_of_memory(), "exit {exit:?}, output {out}");
    // Refilled, the first function's code again, not the second's.
    prestarted(&sb, 1).await;
    let (mut p, mut pipe) = sb.spawn(&sh(show, &first)).await.unwrap();
    assert!(p.prestarted());
    let mut out = String::new();
    pipe.read_to_string(&mut out).await.unwrap();
    p.wait().await;
    assert_eq!(out, "hello.txt\nfrom the package\n");
}

#[tokio::test]
async fn without_a_usable_prestarted_environment_the_start_is_cold() {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(dir.path());
    let code = code_dir(dir.path());
    // More spawns at once than the pool holds: the others start cold, all of them work.
    prestarted(&sb, 2).await;
    let spec = sh("cat /var/task/hello.txt", &code);
    let (a, b, c) = tokio::join!(sb.spawn(&spec), sb.spawn(&spec), sb.spawn(&spec));
    let mut prestarted_count = 0;
    for started in [a, b, c] {
        let (mut p, mut pipe) = started.unwrap();
        prestarted_count += usize::from(p.prestarted());
        let mut out = String::new();
        pipe.read_to_string(&mut out).await.unwrap();
        assert_eq!(p.wait().await, Exit::Code(0));
        assert_eq!(out, "from the package\n");
    }
    assert_eq!(prestarted_count, 2);
    // Pre-started inits that died: discarded, the start is cold.
    for pid in prestarted(&sb, 2).await {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let (mut p, mut pipe) = sb.spawn(&spec).await.unwrap();
    let mut out = String::new();
    pipe.read_to_string(&mut out).await.unwrap();
    assert_eq!(p.wait().await, Exit::Code(0));
    assert_eq!(out, "from the package\n");
    assert!(!p.prestarted());
    // A pre-started environment that cannot take the spawn (more mounts than one message
    // carries) is killed, and the environment starts cold in its cgroup, with every mount.
    prestarted(&sb, 1).await;
    let mut spec = sh("ls /var/task /m/13", &code);
    for i in 1..=13 {
        let source = dir.path().join(format!("m{i}"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join(format!("file{i}")), "").unwrap();
        spec.mounts.push(Mount {
            source,
            target: format!("/m/{i}").into(),
            writable: false,
        });
    }
    let (mut p, mut pipe) = sb.spawn(&spec).await.unwrap();
    let mut out = String::new();
    pipe.read_to_string(&mut out).await.unwrap();
    assert_eq!(p.wait().await, Exit::Code(0), "{out}");
    assert!(!p.prestarted());
    assert_eq!(out, "/m/13:\nfile13\n\n/var/task:\nhello.txt\n");
}

/// Talk over the passed descriptor with `spec`'s script (`echo ping >&3; read <&3; echo`), and
/// return whether the environment was pre-started and what it printed.
async fn over_fd_3(sb: &Sandbox, mut spec: SandboxSpec) -> (bool, String) {
    use std::io::{BufRead, Write};
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    spec.passed_fd = Some(std::sync::Arc::new(std::os::fd::OwnedFd::from(theirs)));
    let (mut p, mut pipe) = sb.spawn(&spec).await.unwrap();
    drop(spec);
    let talk = std::thread::spawn(move || {
        let mut line = String::new();
        std::io::BufReader::new(ours.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        (&ours).write_all(b"pong\n").unwrap();
        line
    });
    let out = read_all(&mut pipe).await;
    assert_eq!(p.wait().await, Exit::Code(0), "{out}");
    assert_eq!(talk.join().unwrap(), "ping\n");
    (p.prestarted(), out)
}

#[tokio::test]
async fn the_passed_descriptor_is_fd_3_cold_and_prestarted() {
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox(dir.path());
    let code = code_dir(dir.path());
    // stdio and fd 3 only (`ls` lists its own directory descriptor too).
    let script =
        "echo ping >&3; read -r answer <&3; echo \"got $answer\"; ls /proc/$$/fd | tr '\\n' ' '";
    let expect = |out: &str| {
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("got pong"), "{out}");
        let fds: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        assert_eq!(fds[..4], ["0", "1", "2", "3"], "{out}");
        assert!(fds.len() <= 5, "{out}");
    };

    // Cold: an isolated network never takes a pre-started environment.
    let mut spec = sh(script, &code);
    spec.network = Network::None;
    let (prestarted_env, out) = over_fd_3(&sb, spec).await;
    assert!(!prestarted_env);
    expect(&out);

    prestarted(&sb, 1).await;
    let (prestarted_env, out) = over_fd_3(&sb, sh(script, &code)).await;
    assert!(prestarted_env, "the pool had one ready");
    expect(&out);

    // A program that is not there is still reported as such, cold and pre-started.
    for network in [Network::None, Network::Host] {
        prestarted(&sb, 1).await;
        let (_ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut spec = sh("", &code);
        spec.program = "/var/task/bootstrap".into();
        spec.network = network;
        spec.passed_fd = Some(std::sync::Arc::new(std::os::fd::OwnedFd::from(theirs)));
        let err = sb.spawn(&spec).await.unwrap_err();
        assert!(
            matches!(err, lamina_sandbox::SpawnError::NotFound { .. }),
            "{network:?}: {err}"
        );
    }
}
