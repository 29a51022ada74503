//! The Lambda Runtime API (`/2018-06-01/runtime/...`) of one execution environment.
//!
//! Each environment gets its own listener ([`RuntimeApi::bind`]); its address is what the function
//! sees as `AWS_LAMBDA_RUNTIME_API`. The pool talks to it through [`RuntimeApi::ready`] (the
//! runtime finished init: its first `/next`, or `/init/error`) and [`RuntimeApi::dispatch`] (hand
//! one invocation to `/next`, get its [`Outcome`] from `/response` or `/error`).
//!
//! Endpoints (each handler below carries its path):
//! - `GET  /2018-06-01/runtime/invocation/next` blocks until an invocation is dispatched.
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` answer it, once.
//! - `POST /2018-06-01/runtime/init/error` reports an init failure (only before the first `/next`).
//!
//! Rules: one invocation in flight; one answer per request id (`400 InvalidRequestID` for an
//! unknown or already answered id); responses over 6 MB (+100 bytes) get `413` and the invoke
//! ends with `Function.ResponseSizeTooLarge`. This crate does not know the sandbox exists.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Response headers of `/next`.
pub mod headers {
    /// The invocation's request id.
    pub const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
    /// Deadline, Unix epoch milliseconds.
    pub const DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
    /// The ARN as invoked (with its qualifier, if any).
    pub const INVOKED_FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
    /// X-Ray trace header.
    pub const TRACE_ID: &str = "lambda-runtime-trace-id";
    /// Decoded client context JSON.
    pub const CLIENT_CONTEXT: &str = "lambda-runtime-client-context";
    /// Cognito identity JSON.
    pub const COGNITO_IDENTITY: &str = "lambda-runtime-cognito-identity";
    /// Error type sent by the runtime with `/error` and `/init/error`.
    pub const FUNCTION_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
}

/// The largest response body the Runtime API accepts (6 MB + 100 bytes, as Lambda).
pub const MAX_RESPONSE_BYTES: usize = 6_291_556;

/// One invocation handed to the runtime.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Request id (a UUID).
    pub request_id: String,
    /// The event.
    pub payload: Bytes,
    /// Deadline, Unix epoch milliseconds.
    pub deadline_ms: u64,
    /// ARN as invoked.
    pub invoked_function_arn: String,
    /// X-Ray trace header.
    pub trace_id: String,
    /// Decoded client context JSON, if the caller sent one.
    pub client_context: Option<String>,
    /// Cognito identity JSON, if any.
    pub cognito_identity: Option<String>,
}

/// How the runtime answered an invocation.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `/response`.
    Response {
        /// The function's result.
        body: Bytes,
        /// The runtime's `Content-Type`, if any.
        content_type: Option<String>,
    },
    /// `/error`.
    Error {
        /// `Lambda-Runtime-Function-Error-Type`, if sent.
        error_type: Option<String>,
        /// The error document.
        body: Bytes,
    },
    /// `/response` with a body over [`MAX_RESPONSE_BYTES`].
    ResponseTooLarge {
        /// Bytes the runtime sent.
        size: usize,
    },
}

/// How init ended.
#[derive(Debug, Clone)]
pub enum InitSignal {
    /// The runtime asked for its first invocation.
    Ready,
    /// The runtime reported `/init/error`.
    Error {
        /// `Lambda-Runtime-Function-Error-Type`, if sent.
        error_type: Option<String>,
        /// The error document.
        body: Bytes,
    },
}

#[derive(Debug, Default)]
struct State {
    initialized: bool,
    init_tx: Option<oneshot::Sender<InitSignal>>,
    /// Dispatched, not yet taken by a `/next`.
    pending: Option<Invocation>,
    /// A `/next` waiting for an invocation.
    waiter: Option<oneshot::Sender<Invocation>>,
    /// The invocation in flight and where its outcome goes.
    current: Option<(String, oneshot::Sender<Outcome>)>,
    /// The last answered request id.
    answered: Option<String>,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-updated in a way that
        // matters more than losing the environment, so recover the guard.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The Runtime API of one environment. Dropping it stops the listener and fails any waiting
/// `/next`.
#[derive(Debug)]
pub struct RuntimeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    init_rx: Option<oneshot::Receiver<InitSignal>>,
    accept: JoinHandle<()>,
}

impl RuntimeApi {
    /// Listen on an ephemeral port of `ip`.
    pub async fn bind(ip: IpAddr) -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let addr = listener.local_addr()?;
        let (init_tx, init_rx) = oneshot::channel();
        let shared = Arc::new(Shared::default());
        shared.lock().init_tx = Some(init_tx);
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(RuntimeApi {
            shared,
            addr,
            init_rx: Some(init_rx),
            accept,
        })
    }

    /// The `host:port` to give the runtime as `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Resolves when init ends: the first `/next`, or `/init/error`. `None` if already taken or
    /// the API was dropped.
    pub fn ready(&mut self) -> Option<oneshot::Receiver<InitSignal>> {
        self.init_rx.take()
    }

    /// Hand `inv` to the runtime's (current or next) `/next`. The receiver resolves with the
    /// runtime's answer; it errors if the API is dropped first.
    pub fn dispatch(&self, inv: Invocation) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.shared.lock();
        st.current = Some((inv.request_id.clone(), tx));
        match st.waiter.take() {
            Some(waiter) => {
                if let Err(inv) = waiter.send(inv) {
                    st.pending = Some(inv);
                }
            }
            None => st.pending = Some(inv),
        }
        rx
    }

    /// Forget the invocation in flight (after a timeout): later answers get `InvalidRequestID`.
    pub fn abandon(&self) {
        let mut st = self.shared.lock();
        st.current = None;
        st.pending = None;
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.accept.abort();
        let mut st = self.shared.lock();
        st.closed = true;
        st.waiter = None;
        st.current = None;
        st.pending = None;
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connection tasks live in this set, so aborting the accept loop ends them too.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                conns.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(route(&shared, req).await) }
                    });
                    // Lambda sends `Lambda-Runtime-Aws-Request-Id`, not the lower-case form;
                    // some runtime clients look headers up case-sensitively.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .title_case_headers(true)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

type Resp = Response<Full<Bytes>>;

async fn route(shared: &Shared, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path");
    };
    match (req.method(), rest) {
        (&Method::GET, "invocation/next") => next(shared).await,
        (&Method::POST, "init/error") => init_error(shared, req).await,
        (&Method::POST, rest) => match rest
            .strip_prefix("invocation/")
            .and_then(|r| r.rsplit_once('/'))
        {
            Some((id, "response")) => {
                let id = id.to_string();
                response(shared, &id, req).await
            }
            Some((id, "error")) => {
                let id = id.to_string();
                invocation_error(shared, &id, req).await
            }
            _ => error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path"),
        },
        _ => error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path"),
    }
}

/// `GET /2018-06-01/runtime/invocation/next`
async fn next(shared: &Shared) -> Resp {
    let rx = {
        let mut st = shared.lock();
        if st.closed {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Runtime.Closed",
                "environment is shutting down",
            );
        }
        if !st.initialized {
            st.initialized = true;
            if let Some(tx) = st.init_tx.take() {
                let _ = tx.send(InitSignal::Ready);
            }
        }
        if let Some(inv) = st.pending.take() {
            return event(inv);
        }
        let (tx, rx) = oneshot::channel();
        st.waiter = Some(tx);
        rx
    };
    match rx.await {
        Ok(inv) => event(inv),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Runtime.Closed",
            "environment is shutting down",
        ),
    }
}

fn event(inv: Invocation) -> Resp {
    let mut resp = Response::new(Full::new(inv.payload));
    let h = resp.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put(headers::REQUEST_ID, &inv.request_id);
    put(headers::DEADLINE_MS, &inv.deadline_ms.to_string());
    put(headers::INVOKED_FUNCTION_ARN, &inv.invoked_function_arn);
    put(headers::TRACE_ID, &inv.trace_id);
    if let Some(cc) = &inv.client_context {
        put(headers::CLIENT_CONTEXT, cc);
    }
    if let Some(ci) = &inv.cognito_identity {
        put(headers::COGNITO_IDENTITY, ci);
    }
    put("content-type", "application/json");
    resp
}

/// `POST /2018-06-01/runtime/invocation/{id}/response`
async fn response(shared: &Shared, id: &str, req: Request<Incoming>) -> Resp {
    let content_type = header(&req, "content-type");
    let (body, size) = read_body(req.into_body(), MAX_RESPONSE_BYTES).await;
    let too_large = size > MAX_RESPONSE_BYTES;
    let outcome = if too_large {
        Outcome::ResponseTooLarge { size }
    } else {
        Outcome::Response { body, content_type }
    };
    if let Err(resp) = complete(shared, id, outcome) {
        return resp;
    }
    if too_large {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
        );
    }
    accepted()
}

/// `POST /2018-06-01/runtime/invocation/{id}/error`
async fn invocation_error(shared: &Shared, id: &str, req: Request<Incoming>) -> Resp {
    let error_type = header(&req, headers::FUNCTION_ERROR_TYPE);
    let (body, _) = read_body(req.into_body(), MAX_RESPONSE_BYTES).await;
    match complete(shared, id, Outcome::Error { error_type, body }) {
        Ok(()) => accepted(),
        Err(resp) => resp,
    }
}

/// `POST /2018-06-01/runtime/init/error`
async fn init_error(shared: &Shared, req: Request<Incoming>) -> Resp {
    let error_type = header(&req, headers::FUNCTION_ERROR_TYPE);
    let (body, _) = read_body(req.into_body(), MAX_RESPONSE_BYTES).await;
    let mut st = shared.lock();
    match st.init_tx.take() {
        Some(tx) if !st.initialized => {
            st.initialized = true;
            let _ = tx.send(InitSignal::Error { error_type, body });
            accepted()
        }
        _ => error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "State transition from Ready to InitError failed for runtime. Error: State transition is not allowed",
        ),
    }
}

fn complete(shared: &Shared, id: &str, outcome: Outcome) -> Result<(), Resp> {
    let mut st = shared.lock();
    match st.current.take() {
        Some((current, tx)) if current == id => {
            let _ = tx.send(outcome);
            st.answered = Some(current);
            Ok(())
        }
        other => {
            st.current = other;
            let message = if st.answered.as_deref() == Some(id) {
                "Invalid request ID: the invocation was already answered"
            } else {
                "Invalid request ID"
            };
            Err(error(StatusCode::BAD_REQUEST, "InvalidRequestID", message))
        }
    }
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Read a body, keeping at most `limit` bytes; returns what was kept and the full size.
async fn read_body(mut body: Incoming, limit: usize) -> (Bytes, usize) {
    let mut kept = Vec::new();
    let mut size = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            size += data.len();
            if kept.len() < limit + 1 {
                let room = limit + 1 - kept.len();
                kept.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
    }
    (Bytes::from(kept), size)
}

fn accepted() -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"{\"status\":\"OK\"}")));
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Resp {
    let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}
