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
}

impl Server {
    /// Start with default settings.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Start with extra `lamina serve` arguments.
    pub fn start_with(args: &[&str]) -> Server {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut s = Server {
            child: None,
            endpoint: String::new(),
            data_dir,
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lamina"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(self.data_dir.path())
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
