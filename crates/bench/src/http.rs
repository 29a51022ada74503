//! The HTTP/1.1 pieces shared by every measurement: a minimal keep-alive client over a raw
//! `TcpStream` (TCP_NODELAY, the whole request in one write, responses framed by
//! `Content-Length`), a closed-loop load generator built on it, and the `floor-server` mode: a
//! minimal hyper server that answers every request at once, the floor of an API round trip.
//!
//! The warm-invoke figures and their floor go through exactly the same client code, so the
//! client's own cost is in both and cancels out of "platform overhead".

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one control-plane request may take before the bench calls lamina stuck.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One parsed response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Header names in lower case.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("response is not JSON: {}", self.body_text()))
    }
}

/// A whole HTTP/1.1 request, head and body in one buffer (sent with one write).
pub(crate) fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: lamina\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

/// One keep-alive connection.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) async fn connect(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Send a request built by [`request`] and read its response.
    pub(crate) async fn send(&mut self, raw: &[u8]) -> Result<Response> {
        self.stream.write_all(raw).await?;
        self.read_response().await
    }

    /// [`Conn::send`] that gives up after [`REQUEST_TIMEOUT`].
    pub(crate) async fn call(&mut self, raw: &[u8]) -> Result<Response> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.send(raw))
            .await
            .context("no response in time")?
    }

    async fn fill(&mut self) -> Result<()> {
        self.buf.reserve(16 * 1024);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }

    async fn read_response(&mut self) -> Result<Response> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("response head")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse::<usize>())
            .transpose()
            .context("bad Content-Length")?;
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        self.buf.drain(..head_end + 4);
        let body = match (length, chunked) {
            (Some(n), _) => {
                while self.buf.len() < n {
                    self.fill().await?;
                }
                self.buf.drain(..n).collect()
            }
            (None, true) => self.read_chunked().await?,
            (None, false) if status == 204 || status == 304 || status < 200 => Vec::new(),
            (None, false) => bail!("response {status} without Content-Length"),
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let eol = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                self.fill().await?;
            };
            let line = String::from_utf8_lossy(&self.buf[..eol]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            self.buf.drain(..eol + 2);
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
            if size == 0 {
                // No trailers are expected; the empty chunk is followed by the final CRLF.
                return Ok(body);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What a closed-loop run measured.
#[derive(Debug)]
pub(crate) struct LoadResult {
    /// Latency of every request.
    pub(crate) latencies: Vec<Duration>,
    /// Wall time of the whole run.
    pub(crate) wall: Duration,
}

impl LoadResult {
    pub(crate) fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// `concurrency` clients, one keep-alive connection each, send `raw` back to back until `total`
/// requests were answered. Every response goes through `check` (an error ends the run).
///
/// The clients run on a thread of their own under a single-threaded runtime: one event loop
/// drives every connection, so the load costs the machine (which lamina, the functions and
/// the floors share with it) as little CPU as it can, and none of it goes to waking the
/// bench's other worker threads.
pub(crate) async fn closed_loop(
    addr: SocketAddr,
    raw: Arc<Vec<u8>>,
    concurrency: usize,
    total: usize,
    check: fn(&Response) -> Result<()>,
) -> Result<LoadResult> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("load-client".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(clients(addr, raw, concurrency, total, check)));
            let _ = tx.send(result);
        })
        .context("starting the load client's thread")?;
    rx.await.context("the load client's thread died")?
}

async fn clients(
    addr: SocketAddr,
    raw: Arc<Vec<u8>>,
    concurrency: usize,
    total: usize,
    check: fn(&Response) -> Result<()>,
) -> Result<LoadResult> {
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        conns.push(Conn::connect(addr).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for mut conn in conns {
        let raw = raw.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(total / concurrency + 1);
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let resp = conn.send(&raw).await?;
                lat.push(t.elapsed());
                check(&resp)?;
            }
            anyhow::Ok(lat)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let joined = tokio::time::timeout(Duration::from_secs(600), async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await);
        }
        out
    })
    .await
    .context("a load run took more than 10 minutes")?;
    let wall = start.elapsed();
    for r in joined {
        latencies.extend(r.context("load client task")??);
    }
    Ok(LoadResult { latencies, wall })
}

/// The `floor-server` mode: a minimal hyper HTTP/1.1 server on an ephemeral loopback port. It
/// prints `floor-server listening on ADDR`, reads each request's body completely and answers
/// `200` with a body and headers shaped like an invoke response. It stops when its stdin closes
/// (its parent, the bench, went away).
pub(crate) async fn floor_server() -> Result<()> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::header::HeaderValue;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "floor-server listening on {}", listener.local_addr()?)?;
        out.flush()?;
    }
    let serve = async {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => return anyhow::Result::<()>::Err(e.into()),
            };
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: hyper::Request<Incoming>| async {
                    let _ = req.into_body().collect().await?;
                    let mut resp = hyper::Response::new(Full::new(Bytes::from_static(b"null")));
                    let h = resp.headers_mut();
                    h.insert("content-type", HeaderValue::from_static("application/json"));
                    h.insert(
                        "x-amz-executed-version",
                        HeaderValue::from_static("$LATEST"),
                    );
                    h.insert(
                        "x-amzn-requestid",
                        HeaderValue::from_static("00000000-0000-4000-8000-000000000000"),
                    );
                    Ok::<_, hyper::Error>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    };
    let mut stdin = tokio::io::stdin();
    let mut byte = [0u8; 1];
    tokio::select! {
        r = serve => r,
        _ = stdin.read(&mut byte) => Ok(()),
    }
}
