//! The protocol floor: the bench's own Rust no-op (the same `rust-noop` binary lamina runs)
//! behind the least a Lambda platform can be, so that lamina's warm rows can be compared with
//! the same function, the same wire protocol and the same number of processes and hops.
//!
//! The `floor-lambda` mode is that platform: an invoke endpoint that hands each request to a
//! runtime's waiting `GET /2018-06-01/runtime/invocation/next` and answers with the runtime's
//! `POST .../response`, on a Runtime API endpoint of its own. Nothing else: no store, no
//! function lookup, no routing or concurrency accounting, no logs, no sandbox. It runs on as
//! many async worker threads as lamina does by default (half the cores), and starts the
//! runtimes itself as plain child processes.
//!
//! The difference between lamina's rows and these is what lamina adds to a warm invoke; the
//! difference between these and the plain round trip is what the protocol and the function's
//! runtime client cost on this machine.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use crate::floors::ChildServer;

/// One invoke waiting for a runtime.
struct Job {
    id: String,
    /// When the invoke arrived, in seconds since the epoch (for its trace id).
    started_secs: u64,
    payload: Bytes,
    reply: oneshot::Sender<Bytes>,
}

struct Platform {
    queue: mpsc::UnboundedSender<Job>,
    /// Taken by one `/next` at a time.
    jobs: tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>,
    /// Invokes handed to a runtime, by request id.
    running: Mutex<HashMap<String, oneshot::Sender<Bytes>>>,
    next_id: AtomicU64,
}

type Resp = Response<Full<Bytes>>;

fn status(code: StatusCode, body: &'static [u8]) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from_static(body)));
    *resp.status_mut() = code;
    resp
}

/// The invoke endpoint: any request is an invoke of the one function.
async fn invoke(platform: Arc<Platform>, req: Request<Incoming>) -> Resp {
    let Ok(body) = req.into_body().collect().await else {
        return status(StatusCode::BAD_REQUEST, b"body");
    };
    let id = format!(
        "00000000-0000-4000-8000-{:012x}",
        platform.next_id.fetch_add(1, Ordering::Relaxed)
    );
    let (reply, answer) = oneshot::channel();
    let started_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let job = Job {
        id,
        started_secs,
        payload: body.to_bytes(),
        reply,
    };
    if platform.queue.send(job).is_err() {
        return status(StatusCode::SERVICE_UNAVAILABLE, b"closed");
    }
    match answer.await {
        Ok(body) => {
            let mut resp = Response::new(Full::new(body));
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            resp
        }
        Err(_) => status(StatusCode::BAD_GATEWAY, b"runtime went away"),
    }
}

/// The Runtime API: `/next` and `/{id}/response`, nothing else.
async fn runtime_api(platform: Arc<Platform>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/invocation/") else {
        return status(StatusCode::NOT_FOUND, b"path");
    };
    if req.method() == Method::GET && rest == "next" {
        let job = platform.jobs.lock().await.recv().await;
        let Some(job) = job else {
            return status(StatusCode::SERVICE_UNAVAILABLE, b"closed");
        };
        let mut resp = Response::new(Full::new(job.payload));
        let h = resp.headers_mut();
        h.insert(
            "lambda-runtime-aws-request-id",
            HeaderValue::from_str(&job.id).expect("an ASCII id"),
        );
        // A trace id of its own per invoke, as Lambda sends: the runtime client puts it in
        // `_X_AMZN_TRACE_ID`, and a new value costs it more than the same one again.
        h.insert(
            "lambda-runtime-trace-id",
            HeaderValue::from_str(&format!(
                "Root=1-{:08x}-{:0>24};Parent={:0>16};Sampled=0",
                job.started_secs,
                &job.id[24..],
                &job.id[24..]
            ))
            .expect("an ASCII trace id"),
        );
        for (name, value) in [
            ("lambda-runtime-deadline-ms", "99999999999999"),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:floor",
            ),
            ("content-type", "application/json"),
        ] {
            h.insert(name, HeaderValue::from_static(value));
        }
        platform
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.id, job.reply);
        return resp;
    }
    let Some(id) = rest.strip_suffix("/response") else {
        return status(StatusCode::NOT_FOUND, b"path");
    };
    let id = id.to_string();
    let Ok(body) = req.into_body().collect().await else {
        return status(StatusCode::BAD_REQUEST, b"body");
    };
    let reply = platform
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    match reply {
        Some(reply) => {
            let _ = reply.send(body.to_bytes());
            status(StatusCode::ACCEPTED, b"{\"status\":\"OK\"}")
        }
        None => status(StatusCode::BAD_REQUEST, b"unknown request id"),
    }
}

/// Serve `listener` with `handler`, one task per connection.
fn serve<F, Fut>(listener: TcpListener, platform: Arc<Platform>, handler: F)
where
    F: Fn(Arc<Platform>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = Resp> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let platform = platform.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let platform = platform.clone();
                    async move { Ok::<_, Infallible>(handler(platform, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// The `floor-lambda` mode: prints `floor-lambda listening on ADDR` once `runtimes` copies of
/// `runtime` are started, and stops (killing them) when its stdin closes.
pub(crate) async fn floor_lambda(runtime: PathBuf, runtimes: usize) -> Result<()> {
    let (queue, jobs) = mpsc::unbounded_channel();
    let platform = Arc::new(Platform {
        queue,
        jobs: tokio::sync::Mutex::new(jobs),
        running: Mutex::default(),
        next_id: AtomicU64::new(0),
    });
    let invoke_listener = TcpListener::bind("127.0.0.1:0").await?;
    let api_listener = TcpListener::bind("127.0.0.1:0").await?;
    let invoke_addr = invoke_listener.local_addr()?;
    let api_addr = api_listener.local_addr()?;
    serve(invoke_listener, platform.clone(), invoke);
    serve(api_listener, platform, runtime_api);
    let mut children = Vec::with_capacity(runtimes);
    for _ in 0..runtimes {
        children.push(start_runtime(&runtime, api_addr)?);
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "floor-lambda listening on {invoke_addr}")?;
        out.flush()?;
    }
    let mut byte = [0u8; 1];
    let _ = tokio::io::stdin().read(&mut byte).await;
    for mut c in children {
        let _ = c.kill().await;
    }
    Ok(())
}

/// One runtime process, with the environment a `provided` runtime needs.
fn start_runtime(program: &Path, api: SocketAddr) -> Result<Child> {
    Command::new(program)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "floor")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/floor")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "floor")
        .env("AWS_REGION", "us-east-1")
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

/// Start the `floor-lambda` child process with `runtimes` copies of `runtime`.
pub(crate) async fn start(bench: &Path, runtime: &Path, runtimes: usize) -> Result<ChildServer> {
    let mut cmd = Command::new(bench);
    cmd.arg("floor-lambda")
        .arg("--runtime")
        .arg(runtime)
        .arg("--runtimes")
        .arg(runtimes.to_string());
    ChildServer::spawn(cmd, "floor-lambda listening on ").await
}
