//! Shared helpers of the end-to-end tests: start a real `lamina serve` on an ephemeral port with
//! a temporary data directory, talk to it with the real `aws-sdk-lambda`, build real zips.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, Runtime};
use aws_sdk_lambda::Client;

pub const ROLE: &str = "arn:aws:iam::000000000000:role/lambda-role";

/// A running `lamina serve`.
pub struct Server {
    child: Option<Child>,
    pub endpoint: String,
    pub data_dir: tempfile::TempDir,
    args: Vec<String>,
    relative: bool,
}

/// `lamina serve` arguments for tests that observe a function's process from the host (its
/// pid, files it writes in a host directory), which the namespace sandbox hides from both
/// sides. `tests/sandbox.rs` covers the same behaviour at the namespace level.
#[allow(dead_code)]
pub const PROCESS_LEVEL: &[&str] = &["--isolation", "process"];

impl Server {
    /// Start with default settings.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Start with extra `lamina serve` arguments.
    pub fn start_with(args: &[&str]) -> Server {
        let mut s = Server::new(args);
        s.spawn();
        s
    }

    fn new(args: &[&str]) -> Server {
        Server {
            child: None,
            endpoint: String::new(),
            data_dir: tempfile::tempdir().expect("temp dir"),
            args: args.iter().map(|s| s.to_string()).collect(),
            relative: false,
        }
    }

    /// Start with `--data-dir` given relative to the server's working directory (the README's
    /// default `./.lamina` is relative).
    pub fn start_relative() -> Server {
        let mut s = Server::new(&[]);
        s.relative = true;
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lamina"));
        cmd.arg("serve").arg("--listen").arg("127.0.0.1:0");
        if self.relative {
            cmd.current_dir(self.data_dir.path())
                .arg("--data-dir")
                .arg("./.lamina");
        } else {
            cmd.arg("--data-dir").arg(self.data_dir.path());
        }
        let mut child = cmd
            .args(&self.args)
            .env("LAMINA_TEST_CANARY", "server-secret")
            .env("LAMINA_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lamina");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("lamina did not report its address in time");
        self.endpoint = line
            .strip_prefix("lamina listening on ")
            .expect("address line")
            .to_string();
        self.child = Some(child);
    }

    /// Stop the server with SIGKILL (no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop the server cleanly (SIGTERM) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// Start again on the same data directory (a new port).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Start again after SIGKILL.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn client(&self) -> Client {
        client_for(&self.endpoint, "us-east-1")
    }

    pub fn client_in(&self, region: &str) -> Client {
        client_for(&self.endpoint, region)
    }

    /// The log stream files of a function.
    pub fn log_files(&self, function: &str) -> Vec<PathBuf> {
        let root = self
            .data_dir
            .path()
            .join("logs/000000000000/us-east-1/aws/lambda")
            .join(function);
        let mut out = Vec::new();
        walk(&root, &mut out);
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn client_for(endpoint: &str, region: &str) -> Client {
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new(
            "AKIDLAMINATEST",
            "secret",
            None,
            None,
            "test",
        ))
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// A zip of `(name, contents, unix mode)` entries.
pub fn zip(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in files {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(*mode);
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A Python package with one module `app.py`.
pub fn python_zip(source: &str) -> Vec<u8> {
    zip(&[("app.py", source.as_bytes(), 0o644)])
}

/// Create a function and wait until it is Active.
pub async fn create(
    client: &Client,
    name: &str,
    runtime: Runtime,
    handler: &str,
    code: Vec<u8>,
) -> aws_sdk_lambda::operation::create_function::CreateFunctionOutput {
    create_with(client, name, runtime, handler, code, |b| b).await
}

/// Create a function with extra settings and wait until it is Active.
pub async fn create_with(
    client: &Client,
    name: &str,
    runtime: Runtime,
    handler: &str,
    code: Vec<u8>,
    more: impl FnOnce(
        aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder,
    ) -> aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder,
) -> aws_sdk_lambda::operation::create_function::CreateFunctionOutput {
    let b = client
        .create_function()
        .function_name(name)
        .runtime(runtime)
        .role(ROLE)
        .handler(handler)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(code))
                .build(),
        );
    let out = more(b).send().await.expect("create function");
    wait_active(client, name).await;
    out
}

pub async fn wait_active(client: &Client, name: &str) {
    client
        .wait_until_function_active_v2()
        .function_name(name)
        .wait(Duration::from_secs(30))
        .await
        .expect("function becomes Active");
}

pub async fn wait_updated(client: &Client, name: &str) {
    client
        .wait_until_function_updated_v2()
        .function_name(name)
        .wait(Duration::from_secs(30))
        .await
        .expect("function update is Successful");
}

pub fn env(vars: &[(&str, &str)]) -> Environment {
    let mut b = Environment::builder();
    for (k, v) in vars {
        b = b.variables(*k, *v);
    }
    b.build()
}

/// Poll `f` until it returns `Some`, or panic after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The service error's code and message of a failed SDK call, plus the HTTP status.
pub fn service_error<E, R>(err: aws_sdk_lambda::error::SdkError<E, R>) -> (u16, String, String)
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug + HasStatus,
{
    match err {
        aws_sdk_lambda::error::SdkError::ServiceError(se) => {
            let status = se.raw().status();
            let e = se.err();
            (
                status,
                e.code().unwrap_or_default().to_string(),
                e.message().unwrap_or_default().to_string(),
            )
        }
        other => panic!("expected a service error, got {other:?}"),
    }
}

pub trait HasStatus {
    fn status(&self) -> u16;
}

impl HasStatus for aws_sdk_lambda::config::http::HttpResponse {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Whether a process is still alive (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// A binary of the `lamina-fixtures` package (built on first use, in the same profile).
pub fn fixture_bin(name: &str) -> PathBuf {
    let lamina = PathBuf::from(env!("CARGO_BIN_EXE_lamina"));
    let dir = lamina.parent().unwrap().to_path_buf();
    let path = dir.join(name);
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "lamina-fixtures", "--bin", name]);
        if dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo");
        assert!(status.success(), "building fixture {name}");
    }
    path
}

/// Every file under `dir` as zip entries `(relative path, bytes, mode)`.
pub fn dir_entries(dir: &Path) -> Vec<(String, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    walk(dir, &mut files);
    files
        .into_iter()
        .map(|p| {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read(&p).unwrap(), mode)
        })
        .collect()
}

/// A zip from owned entries.
pub fn zip_owned(entries: &[(String, Vec<u8>, u32)]) -> Vec<u8> {
    let borrowed: Vec<(&str, &[u8], u32)> = entries
        .iter()
        .map(|(n, d, m)| (n.as_str(), d.as_slice(), *m))
        .collect();
    zip(&borrowed)
}

/// The real executable behind `python3` on the test's PATH.
pub fn host_python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 on PATH");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

// ---------------------------------------------------------------------------------------------
// Control-plane helpers: hashing, a plain HTTP GET, request ids, packages of any size.

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// `CodeSha256` as Lambda reports it: standard base64 of the zip's SHA-256.
pub fn code_sha256(zip: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(sha256(zip))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// One HTTP response read by [`http_get`].
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP/1.1 GET of an `http://host:port/path?query` URL over `std::net::TcpStream`
/// (no client library, no signing), as a browser or `curl` would fetch `Code.Location`.
pub fn http_get(url: &str) -> HttpResponse {
    use std::io::Read;
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http:// URL: {url}"));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = std::net::TcpStream::connect(authority)
        .unwrap_or_else(|e| panic!("connect to {authority}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of the response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let resp = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if resp
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body);
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().expect("numeric content-length");
        assert_eq!(body.len(), len, "body length matches Content-Length");
    }
    HttpResponse { body, ..resp }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("hex chunk size");
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A fast deterministic PRNG (xorshift64*): incompressible bytes without another dependency.
#[derive(Debug)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A `provided.*` package whose `bootstrap` is `script` with unix mode `mode`.
pub fn bootstrap_zip(script: &str, mode: u32) -> Vec<u8> {
    zip(&[("bootstrap", script.as_bytes(), mode)])
}

/// A zip with one stored (uncompressed) entry of `size` random bytes: a zip about as large as
/// its content.
pub fn incompressible_zip(size: usize) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::with_capacity(size + 1024)));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644);
    w.start_file("noise.bin", opts).unwrap();
    let mut rng = Prng::new(0x6c61_6d69_6e61);
    let mut left = size;
    while left > 0 {
        let n = left.min(1 << 20);
        w.write_all(&rng.bytes(n)).unwrap();
        left -= n;
    }
    w.finish().unwrap().into_inner()
}

/// A zip with one deflated entry of `size` zero bytes, written a megabyte at a time: a small
/// zip that unzips to a lot.
pub fn compressible_zip(size: u64) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .unix_permissions(0o644);
    w.start_file("zeros.bin", opts).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        w.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    w.finish().unwrap().into_inner()
}

/// A Python package (`app.py`) plus a symlink entry `link -> target` (unix mode 0o120777).
pub fn zip_with_symlink(link: &str, target: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o644);
    w.start_file("app.py", opts).unwrap();
    w.write_all(b"def handler(event, context):\n    return event\n")
        .unwrap();
    w.add_symlink(
        link,
        target,
        zip::write::SimpleFileOptions::default().unix_permissions(0o120777),
    )
    .unwrap();
    w.finish().unwrap().into_inner()
}

/// Whether `s` has the form of `LastModified`: `YYYY-MM-DDTHH:MM:SS.mmm+0000`.
pub fn is_lambda_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 28
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && &s[23..] == "+0000"
}

/// The request id (`x-amzn-RequestId`) of a failed SDK call, with its service error.
pub fn error_request_id<E, R>(err: &aws_sdk_lambda::error::SdkError<E, R>) -> Option<String>
where
    aws_sdk_lambda::error::SdkError<E, R>: aws_sdk_lambda::operation::RequestId,
{
    use aws_sdk_lambda::operation::RequestId;
    err.request_id().map(str::to_string)
}

/// The unqualified ARN of a function in the default account.
pub fn function_arn(region: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:000000000000:function:{name}")
}

/// Invoke synchronously with `X-Amz-Log-Type: Tail`; returns the JSON payload, the
/// `X-Amz-Function-Error` header and the decoded log tail.
pub async fn call(
    client: &Client,
    name: &str,
    event: serde_json::Value,
) -> (serde_json::Value, Option<String>, String) {
    use base64::Engine;
    let resp = client
        .invoke()
        .function_name(name)
        .payload(Blob::new(event.to_string()))
        .log_type(aws_sdk_lambda::types::LogType::Tail)
        .send()
        .await
        .expect("invoke");
    assert_eq!(resp.status_code(), 200);
    let body =
        serde_json::from_slice(resp.payload().expect("payload").as_ref()).expect("JSON payload");
    let log = base64::engine::general_purpose::STANDARD
        .decode(resp.log_result().unwrap_or_default())
        .expect("base64 log");
    (
        body,
        resp.function_error().map(str::to_string),
        String::from_utf8_lossy(&log).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// Versions, aliases and concurrency: a probe function, invokes that keep the response headers,
// modelled success codes and throttling details.

/// A Python handler (`app.handler`) whose `marker` identifies the code version. By default it
/// reports what the function sees: `MY_VAR`, `AWS_LAMBDA_FUNCTION_VERSION`, the context's
/// version and invoked ARN, the log stream and its process id. `{"action": "sleep",
/// "seconds": s}` sleeps and reports its pid and start/end times; `{"action": "gate", "dir": d,
/// "tag": t}` creates `d/t.started`, then waits (at most `max` seconds, default 30) until
/// `d/release` exists, then reports its pid, marker and version.
pub fn probe_zip(marker: &str) -> Vec<u8> {
    python_zip(&PROBE.replace("@MARKER@", marker))
}

const PROBE: &str = r#"
import os, time

MARKER = "@MARKER@"

def handler(event, context):
    action = event.get("action", "probe") if isinstance(event, dict) else "probe"
    if action == "sleep":
        start = time.time()
        time.sleep(event["seconds"])
        return {"pid": os.getpid(), "start": start, "end": time.time()}
    if action == "gate":
        d = event["dir"]
        with open(os.path.join(d, event["tag"] + ".started"), "w") as f:
            f.write(str(os.getpid()))
        release = os.path.join(d, "release")
        deadline = time.time() + event.get("max", 30)
        while not os.path.exists(release) and time.time() < deadline:
            time.sleep(0.01)
        return {
            "pid": os.getpid(),
            "released": os.path.exists(release),
            "marker": MARKER,
            "env_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        }
    return {
        "marker": MARKER,
        "my_var": os.environ.get("MY_VAR"),
        "env_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        "context_version": context.function_version,
        "invoked_arn": context.invoked_function_arn,
        "log_stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        "pid": os.getpid(),
    }
"#;

/// A qualified ARN in the default account and `us-east-1`: `...:function:{name}:{qualifier}`.
pub fn qualified_arn(name: &str, qualifier: &str) -> String {
    format!("{}:{qualifier}", function_arn("us-east-1", name))
}

/// One successful synchronous invoke: `X-Amz-Executed-Version` and the JSON payload. Panics on a
/// function error.
pub async fn invoke_version(
    client: &Client,
    name: &str,
    qualifier: Option<&str>,
    event: serde_json::Value,
) -> (String, serde_json::Value) {
    let resp = client
        .invoke()
        .function_name(name)
        .set_qualifier(qualifier.map(str::to_string))
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("invoke {name} (qualifier {qualifier:?}): {e:?}"));
    assert_eq!(resp.status_code(), 200, "invoke {name}");
    let body: serde_json::Value =
        serde_json::from_slice(resp.payload().expect("payload").as_ref()).expect("JSON payload");
    assert!(
        resp.function_error().is_none(),
        "invoke {name}: function error {body}"
    );
    (
        resp.executed_version()
            .expect("X-Amz-Executed-Version")
            .to_string(),
        body,
    )
}

/// `(Version, FunctionArn)` of every entry of ListVersionsByFunction, through the SDK paginator.
pub async fn list_versions(client: &Client, name: &str) -> Vec<(String, String)> {
    client
        .list_versions_by_function()
        .function_name(name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("list versions")
        .into_iter()
        .map(|c| {
            (
                c.version().unwrap_or_default().to_string(),
                c.function_arn().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Records the HTTP status of the response an operation got, for operations whose modelled
/// success code matters (the SDK accepts any 2xx). Attach with `.customize().interceptor(..)`.
#[derive(Debug, Clone, Default)]
pub struct StatusSpy(std::sync::Arc<std::sync::atomic::AtomicU16>);

impl StatusSpy {
    pub fn status(&self) -> u16 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl aws_sdk_lambda::config::Intercept for StatusSpy {
    fn name(&self) -> &'static str {
        "StatusSpy"
    }

    fn read_before_deserialization(
        &self,
        context: &aws_sdk_lambda::config::interceptors::BeforeDeserializationInterceptorContextRef<
            '_,
        >,
        _runtime_components: &aws_sdk_lambda::config::RuntimeComponents,
        _cfg: &mut aws_sdk_lambda::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.store(
            context.response().status().as_u16(),
            std::sync::atomic::Ordering::SeqCst,
        );
        Ok(())
    }
}

/// What a failed call's raw response says: status, error code and message (as
/// [`service_error`]), the body's `Reason` and the `Retry-After` header.
#[derive(Debug)]
pub struct ErrorDetails {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub reason: Option<String>,
    pub retry_after: Option<String>,
    pub body: serde_json::Value,
}

pub fn error_details<E>(
    err: aws_sdk_lambda::error::SdkError<E, aws_sdk_lambda::config::http::HttpResponse>,
) -> ErrorDetails
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::fmt::Debug,
{
    match err {
        aws_sdk_lambda::error::SdkError::ServiceError(se) => {
            let raw = se.raw();
            let body: serde_json::Value = raw
                .body()
                .bytes()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(serde_json::Value::Null);
            let e = se.err();
            ErrorDetails {
                status: raw.status().as_u16(),
                code: e.code().unwrap_or_default().to_string(),
                message: e.message().unwrap_or_default().to_string(),
                reason: body["Reason"].as_str().map(str::to_string),
                retry_after: raw.headers().get("retry-after").map(str::to_string),
                body,
            }
        }
        other => panic!("expected a service error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// SQS: the real `aws-sdk-sqs` client against lamina's SQS-compatible endpoint.

impl Server {
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        sqs_client_for(&self.endpoint)
    }
}

pub fn sqs_client_for(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "AKIDLAMINATEST",
            "secret",
            None,
            None,
            "test",
        ))
        .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// Code and message of a failed SQS call.
pub fn sqs_error<E, R>(err: aws_sdk_sqs::error::SdkError<E, R>) -> (String, String)
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match err {
        aws_sdk_sqs::error::SdkError::ServiceError(se) => {
            let e = se.err();
            (
                e.code().unwrap_or_default().to_string(),
                e.message().unwrap_or_default().to_string(),
            )
        }
        other => panic!("expected a service error, got {other:?}"),
    }
}

/// Create a queue and return its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("queue url")
        .to_string()
}

/// Receive (long polling up to `within`) until one message arrives; returns it.
pub async fn receive_one(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    within: Duration,
) -> aws_sdk_sqs::types::Message {
    let deadline = Instant::now() + within;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive message");
        if let Some(m) = out.messages.and_then(|mut m| m.pop()) {
            return m;
        }
        assert!(Instant::now() < deadline, "no message arrived on {url}");
    }
}

/// Rows of a query on lamina's database, each row's columns joined by `|`, read with Python's
/// sqlite3 (as an operator would look at the database); `?` placeholders take `args`.
pub fn db_rows(db: &Path, sql: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); [print('|'.join(str(v) for v in r)) for r in c.execute(sys.argv[2], sys.argv[3:])]")
        .arg(db)
        .arg(sql)
        .args(args)
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
