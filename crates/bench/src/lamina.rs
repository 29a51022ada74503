//! A `lamina serve` started by the bench (temporary data directory, ephemeral port), and the few
//! Lambda API calls the bench makes, sent with the minimal client of [`crate::http`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::http::{request, Conn, Response};
use crate::procfs;

const ROLE: &str = "arn:aws:iam::000000000000:role/lamina-bench";

/// A running `lamina serve`; stopped (SIGTERM, then whatever it left behind) on drop.
#[derive(Debug)]
pub(crate) struct Lamina {
    child: Option<Child>,
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
    stderr: PathBuf,
    pub(crate) dir: tempfile::TempDir,
    /// From spawning `lamina serve` to its `listening` line.
    pub(crate) start_time: Duration,
}

impl Lamina {
    pub(crate) async fn start(bin: &Path, isolation: &str) -> Result<Lamina> {
        let dir = tempfile::Builder::new().prefix("lamina-bench-").tempdir()?;
        let stderr = dir.path().join("lamina.stderr");
        let t = Instant::now();
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--isolation")
            .arg(isolation)
            .env("LAMINA_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("lamina exited at once")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("lamina did not print its address within 30 s")??
            .context("lamina exited before printing its address")?;
        let start_time = t.elapsed();
        // Keep draining stdout so that lamina never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = line
            .strip_prefix("lamina listening on http://")
            .with_context(|| format!("unexpected first line from lamina: {line:?}"))?
            .parse()?;
        Ok(Lamina {
            child: Some(child),
            addr,
            pid,
            stderr,
            dir,
            start_time,
        })
    }

    /// The data directory's function logs of `function`: every request id with an `END` line.
    pub(crate) fn ended(&self, function: &str) -> std::collections::HashSet<String> {
        self.log_lines(function)
            .iter()
            .filter_map(|l| l.strip_prefix("END RequestId: "))
            .map(|id| id.trim().to_string())
            .collect()
    }

    /// Every line of the data directory's function logs of `function` (the host writes them,
    /// so they can be read whatever the sandbox hides from the function).
    pub(crate) fn log_lines(&self, function: &str) -> Vec<String> {
        let root = self
            .dir
            .path()
            .join("data/logs/000000000000/us-east-1/aws/lambda")
            .join(function);
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(text) = std::fs::read_to_string(&p) {
                    out.extend(text.lines().map(str::to_string));
                }
            }
        }
        out
    }

    /// A new keep-alive connection to the API.
    pub(crate) async fn api(&self) -> Result<Api> {
        Ok(Api {
            conn: Conn::connect(self.addr).await?,
        })
    }

    /// After a failure: print the last lines lamina wrote to stderr and keep the temporary
    /// directory (data directory, function logs) for a post-mortem.
    pub(crate) fn post_mortem(&mut self) {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!(
            "lamina's stderr (last lines):\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        );
        self.dir.disable_cleanup(true);
        eprintln!(
            "lamina's data directory and function logs are kept in {}",
            self.dir.path().display()
        );
    }

    /// Stop lamina with SIGTERM, wait for it, then kill any process of its tree still alive.
    pub(crate) async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let tree = procfs::descendants(self.pid);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
        // Give the environments lamina stopped a moment to go; kill whatever is left.
        let alive = |tree: &[(u32, u64)]| -> Vec<(u32, u64)> {
            tree.iter()
                .copied()
                .filter(|&(pid, start)| procfs::same_process(pid, start))
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !alive(&tree).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut left = Vec::new();
        for (pid, _) in alive(&tree) {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            left.push(format!(
                "{pid} {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        procfs::count_orphans(&tree);
        if !left.is_empty() {
            eprintln!(
                "lamina-bench: {} process(es) of lamina's tree outlived it; killed them:\n  {}",
                left.len(),
                left.join("\n  ")
            );
        }
    }
}

impl Drop for Lamina {
    fn drop(&mut self) {
        // `kill_on_drop` ends lamina itself if `stop` was not awaited (an error path).
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }
}

/// One API connection.
#[derive(Debug)]
pub(crate) struct Api {
    pub(crate) conn: Conn,
}

impl Api {
    async fn call(&mut self, raw: &[u8], what: &str) -> Result<Response> {
        self.conn.call(raw).await.with_context(|| what.to_string())
    }

    pub(crate) async fn expect(&mut self, raw: &[u8], status: u16, what: &str) -> Result<Response> {
        let resp = self.call(raw, what).await?;
        if resp.status != status {
            bail!(
                "{what}: expected {status}, got {}: {}",
                resp.status,
                resp.body_text()
            );
        }
        Ok(resp)
    }

    /// CreateFunction and wait until the function is `Active`.
    pub(crate) async fn create_active(&mut self, spec: &FunctionSpec<'_>) -> Result<()> {
        let body = spec.create_request();
        self.expect(&body, 201, &format!("CreateFunction {}", spec.name))
            .await?;
        self.wait_state(spec.name, "State", "Active").await?;
        Ok(())
    }

    pub(crate) async fn configuration(&mut self, name: &str) -> Result<Value> {
        let raw = request(
            "GET",
            &format!("/2015-03-31/functions/{name}/configuration"),
            &[],
            b"",
        );
        self.expect(&raw, 200, &format!("GetFunctionConfiguration {name}"))
            .await?
            .json()
    }

    /// Poll GetFunctionConfiguration until `field` is `want` (or fail on `Failed`).
    pub(crate) async fn wait_state(&mut self, name: &str, field: &str, want: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let cfg = self.configuration(name).await?;
            match cfg[field].as_str() {
                Some(s) if s == want => return Ok(()),
                Some("Failed") => bail!("{name}: {field} is Failed: {cfg}"),
                _ => {}
            }
            ensure!(
                Instant::now() < deadline,
                "{name}: {field} did not become {want} within 60 s: {cfg}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// UpdateFunctionConfiguration with a new description (a new revision: new environments).
    pub(crate) async fn touch(&mut self, name: &str, description: &str) -> Result<()> {
        let body = json!({ "Description": description }).to_string();
        let raw = request(
            "PUT",
            &format!("/2015-03-31/functions/{name}/configuration"),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        self.expect(&raw, 200, &format!("UpdateFunctionConfiguration {name}"))
            .await?;
        Ok(())
    }
}

/// A function the bench deploys.
#[derive(Debug)]
pub(crate) struct FunctionSpec<'a> {
    pub(crate) name: &'a str,
    pub(crate) runtime: &'a str,
    pub(crate) handler: &'a str,
    pub(crate) zip: &'a [u8],
}

impl FunctionSpec<'_> {
    /// The whole CreateFunction request (built before any timing starts).
    pub(crate) fn create_request(&self) -> Vec<u8> {
        let body = json!({
            "FunctionName": self.name,
            "Runtime": self.runtime,
            "Handler": self.handler,
            "Role": ROLE,
            "Timeout": 30,
            // One full vCPU (Lambda's CPU share is MemorySize / 1769 MB), so that the figures
            // measure the platform, not a CPU quota.
            "MemorySize": 1769,
            "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(self.zip) },
        })
        .to_string();
        request(
            "POST",
            "/2015-03-31/functions",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }
}

/// A synchronous Invoke request of `name` with `payload`.
pub(crate) fn invoke_request(name: &str, payload: &[u8]) -> Vec<u8> {
    request(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &[],
        payload,
    )
}

/// An `Event` Invoke request of `name` with `payload`.
pub(crate) fn event_request(name: &str, payload: &[u8]) -> Vec<u8> {
    request(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &[("X-Amz-Invocation-Type", "Event")],
        payload,
    )
}

/// A synchronous invoke succeeded: `200` without `X-Amz-Function-Error`.
pub(crate) fn invoke_ok(resp: &Response) -> Result<()> {
    if resp.status != 200 {
        bail!("invoke: status {}: {}", resp.status, resp.body_text());
    }
    if let Some(e) = resp.header("x-amz-function-error") {
        bail!("invoke: function error {e}: {}", resp.body_text());
    }
    Ok(())
}

/// The Rust no-op's package: `rust-noop` as `bootstrap`.
pub(crate) fn rust_noop_zip(binary: &Path) -> Result<Vec<u8>> {
    let bootstrap =
        std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    zip(&[("bootstrap", &bootstrap, 0o755)])
}

/// A zip of `(name, contents, unix mode)` entries, deflated at the fastest level.
pub(crate) fn zip(files: &[(&str, &[u8], u32)]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in files {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(1))
            .unix_permissions(*mode);
        w.start_file(*name, opts)?;
        w.write_all(data)?;
    }
    Ok(w.finish()?.into_inner())
}

/// A zip of about `size` bytes whose one entry is random (incompressible, stored).
pub(crate) fn incompressible_zip(size: usize, seed: u64) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::with_capacity(size + 1024)));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644);
    w.start_file("noise.bin", opts)?;
    // xorshift64*: fast and dependency-free; the content only has to be incompressible.
    let mut x = seed | 1;
    let mut chunk = Vec::with_capacity(1 << 20);
    let mut left = size;
    while left > 0 {
        chunk.clear();
        let n = left.min(1 << 20);
        while chunk.len() < n {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            chunk.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        chunk.truncate(n);
        w.write_all(&chunk)?;
        left -= n;
    }
    Ok(w.finish()?.into_inner())
}

/// The no-op handlers the bench deploys.
pub(crate) const PYTHON_NOOP: &str = "def handler(event, context):\n    return None\n";
pub(crate) const NODE_NOOP: &str = "exports.handler = async () => null;\n";
