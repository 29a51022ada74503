//! The escape suite: a probe function tries, from inside the namespace sandbox, each thing a
//! function must not be able to do, and reports what happened; the tests check the answers
//! and, from the host, that limits held and nothing was left running.
//!
//! These tests need what CI has: root, namespaces and cgroups. They fail (rather than pass
//! vacuously) when the server falls back to the process level.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_lambda::types::{EphemeralStorage, Runtime};
use common::*;
use serde_json::{json, Value};

/// The probe: `{"action": ...}` → a JSON report. Uses only the standard library (ctypes for
/// the raw syscalls).
const PROBE: &str = r#"
import ctypes, errno, os, resource, signal, subprocess, time

libc = ctypes.CDLL(None, use_errno=True)

def attempt(fn):
    try:
        fn()
        return {"ok": True}
    except OSError as e:
        return {"ok": False, "errno": e.errno, "error": str(e)}
    except Exception as e:
        return {"ok": False, "error": repr(e)}

def call(ret):
    if ret == -1:
        e = ctypes.get_errno()
        return {"ok": False, "errno": e, "error": os.strerror(e)}
    return {"ok": True}

def read(path):
    with open(path, "rb") as f:
        f.read(16)

def write(path):
    with open(path, "w") as f:
        f.write("x")

def handler(event, context):
    a = event["action"]
    if a == "files":
        return {p: attempt(lambda p=p: read(p)) for p in event["read"]} | {
            "listdirs": {p: attempt(lambda p=p: os.listdir(p)) for p in event.get("list", [])},
            "writes": {p: attempt(lambda p=p: write(p)) for p in event.get("write", [])},
            "root": sorted(os.listdir("/")),
        }
    if a == "identity":
        caps = {}
        for line in open("/proc/self/status"):
            k, _, v = line.partition(":")
            if k in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp"):
                caps[k] = v.strip()
        return {"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid(),
                "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                "status": caps, "cwd": os.getcwd()}
    if a == "syscalls":
        CLONE_NEWUSER = 0x10000000
        libc.syscall.restype = ctypes.c_long
        out = {
            "mount": call(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None)),
            "ptrace": call(libc.ptrace(16, 1, None, None)),
            "unshare": call(libc.unshare(CLONE_NEWUSER)),
            "clone3": call(libc.syscall(435, None, 0)),
            "chroot": call(libc.chroot(b"/tmp")),
            "raise_nofile": attempt(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))),
            "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
            "setuid0": call(libc.setuid(0)),
        }
        # A process still starts (glibc falls back from clone3 to clone).
        out["subprocess"] = subprocess.run(["/bin/echo", "child ran"], capture_output=True, text=True).stdout
        return out
    if a == "tmp":
        before = sorted(os.listdir("/tmp"))
        write("/tmp/" + event["mark"])
        return {"before": before}
    if a == "fill_tmp":
        n = 0
        chunk = b"\0" * (1 << 20)
        try:
            with open("/tmp/fill", "wb") as f:
                while True:
                    f.write(chunk)
                    f.flush()
                    n += len(chunk)
        except OSError as e:
            return {"bytes": n, "errno": e.errno}
        finally:
            try:
                os.unlink("/tmp/fill")
            except OSError:
                pass
    if a == "fork_bomb":
        children = []
        err = None
        while len(children) < 5000:
            try:
                pid = os.fork()
            except OSError as e:
                err = e.errno
                break
            if pid == 0:
                signal.pause()
                os._exit(0)
            children.append(pid)
        for c in children:
            os.kill(c, signal.SIGKILL)
        for c in children:
            os.waitpid(c, 0)
        return {"forked": len(children), "errno": err}
    if a == "memory":
        hold = []
        for _ in range(event["mb"]):
            hold.append(bytearray(1 << 20))
        return {"allocated": len(hold)}
    if a == "busy":
        start, cpu0 = time.monotonic(), time.process_time()
        while time.monotonic() - start < event["seconds"]:
            pass
        return {"wall": time.monotonic() - start, "cpu": time.process_time() - cpu0}
    if a == "linger":
        subprocess.Popen(["/bin/sleep", "300"])
        time.sleep(300)
    if a == "net":
        import socket
        ifaces = [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]]
        def connect():
            socket.create_connection((event["host"], event["port"]), timeout=2).close()
        return {"interfaces": ifaces, "connect": attempt(connect)}
    if a == "stream":
        time.sleep(event.get("seconds", 0))
        return {"stream": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]}
    if a == "opt":
        return {"data": open("/opt/data.txt").read(), "listing": sorted(os.listdir("/opt"))}
    return {"unknown": a}
"#;

fn server() -> Server {
    Server::start_with(&["--isolation", "namespace"])
}

/// The `PROBE_ID` of probe function `name` (unique to this test run).
fn marker(name: &str) -> String {
    format!("probe-{name}-{}", std::process::id())
}

async fn probe(server: &Server, name: &str, memory: i32, timeout: i32) -> aws_sdk_lambda::Client {
    let client = server.client();
    let marker = marker(name);
    create_with(
        &client,
        name,
        Runtime::Python312,
        "app.handler",
        python_zip(PROBE),
        |b| {
            b.memory_size(memory)
                .timeout(timeout)
                .environment(env(&[("PROBE_ID", &marker)]))
        },
    )
    .await;
    client
}

/// Host processes that carry `PROBE_ID=<marker>` in their environment (the function's
/// processes, at any isolation level).
fn processes_with(marker: &str) -> Vec<u32> {
    let needle = format!("PROBE_ID={marker}");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Whether the cgroup of process `pid` is frozen: `frozen 1` in its v2 `cgroup.events`, or
/// `FROZEN` in its v1 `freezer.state`.
fn cgroup_frozen(pid: u32) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = |fstype: &str, option: Option<&str>| -> Option<String> {
        mountinfo.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut r = right.split(' ');
            let (fs, _, opts) = (r.next()?, r.next()?, r.next().unwrap_or(""));
            let ok = fs == fstype && option.is_none_or(|o| opts.split(',').any(|x| x == o));
            ok.then(|| left.split(' ').nth(4).map(str::to_string))?
        })
    };
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        if controllers.is_empty() {
            if let Some(root) = mount("cgroup2", None) {
                let events = std::fs::read_to_string(format!("{root}{path}/cgroup.events"));
                if events.is_ok_and(|e| e.lines().any(|l| l == "frozen 1")) {
                    return true;
                }
            }
        } else if controllers.split(',').any(|c| c == "freezer") {
            if let Some(root) = mount("cgroup", Some("freezer")) {
                let state = std::fs::read_to_string(format!("{root}{path}/freezer.state"));
                if state.is_ok_and(|s| s.trim() == "FROZEN") {
                    return true;
                }
            }
        }
    }
    false
}

#[tokio::test]
async fn it_sees_only_its_own_files() {
    let server = server();
    let client = probe(&server, "viewer", 128, 10).await;
    // Another function, whose code lives somewhere under the data directory.
    create(
        &client,
        "neighbour",
        Runtime::Python312,
        "app.handler",
        python_zip("def handler(e, c):\n    return 'secret-of-neighbour'\n"),
    )
    .await;
    let data = server.data_dir.path().display().to_string();
    let neighbour_code = std::fs::read_dir(server.data_dir.path().join("code"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("app.py").display().to_string())
        .collect::<Vec<_>>();
    let binary_dir = std::path::Path::new(env!("CARGO_BIN_EXE_lamina"))
        .parent()
        .unwrap()
        .display()
        .to_string();
    let mut reads = vec![
        "/etc/shadow".to_string(),
        format!("{data}/lamina.db"),
        format!("{binary_dir}/lamina"),
        "/root/.bash_history".to_string(),
        "/var/task/app.py".to_string(),
        "/var/runtime/python/lamina_runtime.py".to_string(),
    ];
    reads.extend(neighbour_code.iter().cloned());
    let (body, err, _) = call(
        &client,
        "viewer",
        json!({
            "action": "files",
            "read": reads,
            "list": [data, binary_dir, "/home"],
            "write": ["/var/task/x", "/var/runtime/x", "/opt/x", "/usr/x", "/etc/passwd", "/x", "/tmp/ok"],
        }),
    )
    .await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["/var/task/app.py"]["ok"], true, "{body}");
    assert_eq!(body["/var/runtime/python/lamina_runtime.py"]["ok"], true);
    for secret in ["/etc/shadow", "/root/.bash_history"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("{data}/lamina.db"), format!("{binary_dir}/lamina")])
        .chain(neighbour_code)
    {
        assert_eq!(body[&secret]["ok"], false, "{secret} was readable: {body}");
    }
    for (dir, result) in body["listdirs"].as_object().unwrap() {
        assert_eq!(result["ok"], false, "{dir} was listable: {body}");
    }
    let writes = body["writes"].as_object().unwrap();
    for (path, result) in writes {
        if path == "/tmp/ok" {
            assert_eq!(result["ok"], true, "/tmp must be writable: {body}");
        } else {
            assert_eq!(result["ok"], false, "{path} was writable: {body}");
        }
    }
    // Read-only file system (EROFS) where the path exists.
    assert_eq!(writes["/var/task/x"]["errno"], 30, "{body}");
    let root: Vec<&str> = body["root"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // (`/root` exists only where the host's Python lives under it, holding only that path.)
    for absent in ["home", "work", "srv", "mnt", "boot", "sys"] {
        assert!(!root.contains(&absent), "/{absent} is visible: {root:?}");
    }
}

#[tokio::test]
async fn it_runs_unprivileged_and_alone() {
    let server = server();
    let client = probe(&server, "who", 128, 10).await;
    let (body, err, _) = call(&client, "who", json!({"action": "identity"})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["uid"], 993, "{body}");
    assert_eq!(body["gid"], 990);
    assert_eq!(body["cwd"], "/var/task");
    // Its own pid namespace: init (1) and the runtime (2), nothing of the host's.
    assert_eq!(body["pids"], json!([1, 2]), "{body}");
    let status = &body["status"];
    assert_eq!(status["CapEff"], "0000000000000000", "{body}");
    assert_eq!(status["CapPrm"], "0000000000000000");
    assert_eq!(status["CapBnd"], "0000000000000000");
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(status["Seccomp"], "2", "seccomp filter mode: {body}");
}

#[tokio::test]
async fn dangerous_syscalls_fail() {
    let server = server();
    let client = probe(&server, "sys", 128, 10).await;
    let (body, err, _) = call(&client, "sys", json!({"action": "syscalls"})).await;
    assert!(err.is_none(), "{body}");
    for (name, errno) in [
        ("mount", 1),
        ("ptrace", 1),
        ("unshare", 1),
        ("chroot", 1),
        ("clone3", 38),
        ("setuid0", 1),
    ] {
        assert_eq!(body[name]["ok"], false, "{name}: {body}");
        assert_eq!(body[name]["errno"], errno, "{name}: {body}");
    }
    assert_eq!(body["raise_nofile"]["ok"], false, "{body}");
    assert_eq!(body["nofile"], json!([1024, 1024]));
    assert_eq!(body["subprocess"], "child ran\n", "{body}");
}

#[tokio::test]
async fn tmp_is_private_to_each_environment_and_sized() {
    let server = server();
    let client = probe(&server, "tmpuser", 128, 10).await;
    let (body, _, _) = call(&client, "tmpuser", json!({"action": "tmp", "mark": "a"})).await;
    assert_eq!(
        body["before"],
        json!([]),
        "a new environment starts with an empty /tmp"
    );
    // The same environment keeps its /tmp...
    let (body, _, _) = call(&client, "tmpuser", json!({"action": "tmp", "mark": "b"})).await;
    assert_eq!(body["before"], json!(["a"]));
    // ...another function's environment does not see it.
    let other = probe(&server, "tmpother", 128, 10).await;
    let (body, _, _) = call(&other, "tmpother", json!({"action": "tmp", "mark": "c"})).await;
    assert_eq!(body["before"], json!([]));
    // EphemeralStorage sizes /tmp: ENOSPC past it. (tmpfs pages count against the memory
    // limit, so memory is set above the storage size.)
    let client = server.client();
    create_with(
        &client,
        "filler",
        Runtime::Python312,
        "app.handler",
        python_zip(PROBE),
        |b| {
            b.memory_size(1024)
                .timeout(30)
                .ephemeral_storage(EphemeralStorage::builder().size(600).build().unwrap())
        },
    )
    .await;
    let (body, err, _) = call(&client, "filler", json!({"action": "fill_tmp"})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["errno"], 28, "ENOSPC: {body}");
    let mb = body["bytes"].as_u64().unwrap() / (1 << 20);
    assert!((590..=600).contains(&mb), "filled {mb} MB of a 600 MB /tmp");
}

#[tokio::test]
async fn a_fork_bomb_hits_the_process_limit() {
    let server = server();
    let client = probe(&server, "bomb", 1024, 60).await;
    let (body, err, _) = call(&client, "bomb", json!({"action": "fork_bomb"})).await;
    assert!(err.is_none(), "{body}");
    let forked = body["forked"].as_u64().unwrap();
    assert!(forked < 1024 && forked > 900, "{body}");
    assert_eq!(body["errno"], 11, "EAGAIN: {body}");
    // The environment is still usable afterwards.
    let (body, err, _) = call(&client, "bomb", json!({"action": "identity"})).await;
    assert!(err.is_none(), "{body}");
}

#[tokio::test]
async fn a_memory_bomb_is_killed_with_the_documented_error() {
    let server = server();
    let client = probe(&server, "hog", 128, 30).await;
    let (body, err, log) = call(&client, "hog", json!({"action": "memory", "mb": 400})).await;
    assert_eq!(err.as_deref(), Some("Unhandled"), "{body}");
    assert_eq!(body["errorType"], "Runtime.OutOfMemory", "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("RequestId: ")
            && message.ends_with("Error: Runtime exited with error: signal: killed"),
        "{message}"
    );
    // REPORT's Max Memory Used comes from the cgroup and stays within the limit.
    let used: u64 = log
        .split("Max Memory Used: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Max Memory Used in {log}"));
    assert!(
        (100..=129).contains(&used),
        "Max Memory Used {used} MB: {log}"
    );
    // A fresh environment serves the next invoke.
    let (body, err, _) = call(&client, "hog", json!({"action": "memory", "mb": 10})).await;
    assert!(err.is_none(), "{body}");
}

#[tokio::test]
async fn cpu_is_proportional_to_memory() {
    let server = server();
    // 512 MB is 512/1769 = 0.29 of a vCPU.
    let client = probe(&server, "spinner", 512, 30).await;
    // The first invoke includes init (which gets a full vCPU); measure on a warm environment.
    call(
        &client,
        "spinner",
        json!({"action": "busy", "seconds": 0.1}),
    )
    .await;
    let (body, err, _) = call(&client, "spinner", json!({"action": "busy", "seconds": 2})).await;
    assert!(err.is_none(), "{body}");
    let share = body["cpu"].as_f64().unwrap() / body["wall"].as_f64().unwrap();
    assert!(
        share < 0.29 * 1.25 && share > 0.05,
        "used {share:.2} of a CPU with a 0.29 vCPU quota: {body}"
    );
}

#[tokio::test]
async fn a_timeout_leaves_nothing_running() {
    let server = server();
    let client = probe(&server, "lingerer", 128, 1).await;
    let marker = marker("lingerer");
    let started = Instant::now();
    let (body, err, _) = call(&client, "lingerer", json!({"action": "linger"})).await;
    assert_eq!(err.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The runtime and the background `sleep` it started are both gone.
    eventually(
        Duration::from_secs(10),
        "the environment's processes to die",
        || async { processes_with(&marker).is_empty().then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn layers_are_mounted_read_only_at_opt() {
    let server = server();
    let client = server.client();
    let layer = client
        .publish_layer_version()
        .layer_name("data")
        .content(
            aws_sdk_lambda::types::LayerVersionContentInput::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip(&[(
                    "data.txt",
                    b"from the layer",
                    0o644,
                )])))
                .build(),
        )
        .send()
        .await
        .unwrap();
    create_with(
        &client,
        "layered",
        Runtime::Python312,
        "app.handler",
        python_zip(PROBE),
        |b| b.layers(layer.layer_version_arn().unwrap()),
    )
    .await;
    let (body, err, _) = call(&client, "layered", json!({"action": "opt"})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["data"], "from the layer");
    assert_eq!(body["listing"], json!(["data.txt"]));
    let (body, _, _) = call(
        &client,
        "layered",
        json!({"action": "files", "read": [], "write": ["/opt/data.txt"]}),
    )
    .await;
    assert_eq!(body["writes"]["/opt/data.txt"]["errno"], 30, "{body}");
}

#[tokio::test]
async fn idle_environments_are_frozen() {
    let server = server();
    let client = probe(&server, "sleeper", 128, 10).await;
    let marker = marker("sleeper");
    let (_, err, _) = call(&client, "sleeper", json!({"action": "identity"})).await;
    assert!(err.is_none());
    // Between invocations every process of the environment is frozen (cgroup freezer) and
    // uses no CPU.
    let runtime = eventually(Duration::from_secs(5), "the runtime process", || async {
        processes_with(&marker).first().copied()
    })
    .await;
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let frozen = |pid: u32| -> bool { cgroup_frozen(pid) };
    eventually(
        Duration::from_secs(5),
        "the idle environment to freeze",
        || async { frozen(runtime).then_some(()) },
    )
    .await;
    let before = cpu(runtime);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cpu(runtime), before);
    // The next invoke thaws it.
    let (_, err, _) = call(&client, "sleeper", json!({"action": "identity"})).await;
    assert!(err.is_none());
    assert!(
        processes_with(&marker).contains(&runtime),
        "the same environment served it"
    );
}

#[tokio::test]
async fn node_and_rust_functions_run_sandboxed() {
    let server = server();
    let client = server.client();
    create(
        &client,
        "nodeprobe",
        Runtime::Nodejs20x,
        "index.handler",
        zip(&[(
            "index.mjs",
            b"import fs from 'node:fs';\nexport const handler = async () => ({ uid: process.getuid(), task: fs.readdirSync('/var/task'), root: fs.readdirSync('/').sort() });\n",
            0o644,
        )]),
    )
    .await;
    let (body, err, _) = call(&client, "nodeprobe", json!({})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["uid"], 993);
    assert_eq!(body["task"], json!(["index.mjs"]));
    assert!(!body["root"].as_array().unwrap().contains(&json!("root")));
    let binary = std::fs::read(fixture_bin("rust-echo")).unwrap();
    create(
        &client,
        "rustprobe",
        Runtime::Providedal2023,
        "bootstrap",
        zip(&[("bootstrap", &binary, 0o755)]),
    )
    .await;
    let (body, err, _) = call(&client, "rustprobe", json!({"hello": "sandbox"})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["event"], json!({"hello": "sandbox"}), "{body}");
}

#[tokio::test]
async fn the_process_level_is_still_available() {
    let server = Server::start_with(&["--isolation", "process"]);
    let client = probe(&server, "plain", 128, 10).await;
    let (body, err, _) = call(&client, "plain", json!({"action": "identity"})).await;
    assert!(err.is_none(), "{body}");
    // A plain child process: the server's user, host pids.
    assert_ne!(body["pid"], 2, "{body}");
    let _: &Value = &body;
}

#[tokio::test]
async fn concurrent_invokes_run_in_their_own_sandboxes() {
    let server = server();
    let client = probe(&server, "parallel", 128, 10).await;
    let started = Instant::now();
    let calls = (0..4).map(|_| {
        let client = client.clone();
        async move {
            call(
                &client,
                "parallel",
                json!({"action": "stream", "seconds": 1}),
            )
            .await
        }
    });
    let mut streams = Vec::new();
    for handle in calls.map(tokio::spawn).collect::<Vec<_>>() {
        let (body, err, _) = handle.await.unwrap();
        assert!(err.is_none(), "{body}");
        streams.push(body["stream"].as_str().unwrap().to_string());
    }
    streams.sort();
    streams.dedup();
    assert_eq!(streams.len(), 4, "four environments at once: {streams:?}");
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "they ran in parallel: {:?}",
        started.elapsed()
    );
    // Four environments, each a pid namespace of its own with init and the runtime.
    assert_eq!(processes_with(&marker("parallel")).len(), 4);
}

#[tokio::test]
async fn idle_stopped_and_killed_servers_leave_nothing_running() {
    let mut server = Server::start_with(&["--isolation", "namespace", "--idle-timeout", "0.5"]);
    let client = probe(&server, "idler", 128, 10).await;
    let marker = marker("idler");
    call(&client, "idler", json!({"action": "identity"})).await;
    assert_eq!(processes_with(&marker).len(), 1, "one runtime process");
    eventually(
        Duration::from_secs(10),
        "the idle environment to stop",
        || async { processes_with(&marker).is_empty().then_some(()) },
    )
    .await;
    // A clean stop (SIGTERM) stops the environments.
    server.restart();
    let client = server.client();
    call(&client, "idler", json!({"action": "identity"})).await;
    assert_eq!(processes_with(&marker).len(), 1);
    server.stop();
    eventually(
        Duration::from_secs(10),
        "environments to stop with the server",
        || async { processes_with(&marker).is_empty().then_some(()) },
    )
    .await;
    // SIGKILL: the helper dies with the server and every environment with the helper.
    server.restart();
    let client = server.client();
    call(&client, "idler", json!({"action": "identity"})).await;
    assert_eq!(processes_with(&marker).len(), 1);
    server.kill();
    eventually(
        Duration::from_secs(10),
        "environments to die with a killed server",
        || async { processes_with(&marker).is_empty().then_some(()) },
    )
    .await;
}

/// Host and port of the server's Lambda API, which a function on the host's network reaches.
fn api_port(server: &Server) -> u16 {
    server.endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_isolated_network_reaches_only_the_runtime_api() {
    let server = server();
    let client = server.client();
    for (name, network) in [("hostnet", None), ("nonet", Some("none"))] {
        create_with(
            &client,
            name,
            Runtime::Python312,
            "app.handler",
            python_zip(PROBE),
            |b| match network {
                Some(n) => b.environment(env(&[("LAMINA_NETWORK", n)])),
                None => b,
            },
        )
        .await;
    }
    let event = json!({"action": "net", "host": "127.0.0.1", "port": api_port(&server)});
    // On the host's network (the default, as on Lambda) it reaches the server's port...
    let (body, err, _) = call(&client, "hostnet", event.clone()).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["connect"]["ok"], true, "{body}");
    // ...with a network of its own it has only loopback, and still its Runtime API (it ran).
    let (body, err, _) = call(&client, "nonet", event).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["interfaces"], json!(["lo"]), "{body}");
    assert_eq!(body["connect"]["ok"], false, "{body}");
}

#[tokio::test]
async fn a_function_may_ask_for_a_stricter_sandbox_only() {
    // A process-level server runs a function that asks for the namespace level in it...
    let server = Server::start_with(&["--isolation", "process"]);
    let client = server.client();
    create_with(
        &client,
        "strict",
        Runtime::Python312,
        "app.handler",
        python_zip(PROBE),
        |b| b.environment(env(&[("LAMINA_ISOLATION", "namespace")])),
    )
    .await;
    let (body, err, _) = call(&client, "strict", json!({"action": "identity"})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["uid"], 993, "{body}");
    assert_eq!(body["pids"], json!([1, 2]));
    // ...while a namespace server ignores a request for less.
    let server = self::server();
    let client = server.client();
    create_with(
        &client,
        "lax",
        Runtime::Python312,
        "app.handler",
        python_zip(PROBE),
        |b| b.environment(env(&[("LAMINA_ISOLATION", "process")])),
    )
    .await;
    let (body, err, _) = call(&client, "lax", json!({"action": "identity"})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["uid"], 993, "{body}");
    // A value lamina does not know is refused with the variable named.
    let err = client
        .update_function_configuration()
        .function_name("lax")
        .environment(env(&[("LAMINA_NETWORK", "internet")]))
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(status, 400);
    assert_eq!(code, "InvalidParameterValueException");
    assert!(message.contains("LAMINA_NETWORK"), "{message}");
}
