//! The Lambda Runtime API (`/2018-06-01/runtime/...`) of one execution environment.
//!
//! Each environment gets its own listener ([`RuntimeApi::bind`]); its address is what the function
//! sees as `AWS_LAMBDA_RUNTIME_API`. A connection made ahead (one end of a Unix socket pair whose
//! other end the runtime inherits) can be served too ([`RuntimeApi::attach`]): lamina's own
//! runtime clients use that, which spares them a connect and, in Node.js, loading `node:net`.
//! The pool talks to it through [`RuntimeApi::ready`] (the runtime finished init: its first
//! `/next`, or `/init/error`) and [`RuntimeApi::dispatch`] (hand one invocation to `/next`, get
//! its [`Outcome`] from `/response` or `/error`).
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
    /// The connection given to [`RuntimeApi::attach`], if any.
    attached: Option<JoinHandle<()>>,
}

impl RuntimeApi {
    /// Listen on an ephemeral port of `ip`.
    pub async fn bind(ip: IpAddr) -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        RuntimeApi::serve(listener)
    }

    /// Serve on a listening socket made elsewhere (inside an environment's own network
    /// namespace, where only it can connect). Needs a Tokio runtime.
    pub fn from_listener(listener: std::net::TcpListener) -> std::io::Result<RuntimeApi> {
        listener.set_nonblocking(true)?;
        RuntimeApi::serve(TcpListener::from_std(listener)?)
    }

    fn serve(listener: TcpListener) -> std::io::Result<RuntimeApi> {
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
            attached: None,
        })
    }

    /// Also serve `stream`, a connection the runtime already holds the other end of (a Unix
    /// socket pair). Needs a Tokio runtime. A second call replaces the first connection.
    pub fn attach(&mut self, stream: std::os::unix::net::UnixStream) -> std::io::Result<()> {
        stream.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(stream)?;
        if let Some(old) = self
            .attached
            .replace(tokio::spawn(serve_connection(stream, self.shared.clone())))
        {
            old.abort();
        }
        Ok(())
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
        if let Some(attached) = &self.attached {
            attached.abort();
        }
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
                conns.spawn(serve_connection(stream, shared.clone()));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Serve the Runtime API on one connection until it closes.
async fn serve_connection<S>(stream: S, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(&shared, req).await) }
    });
    // Lambda sends `Lambda-Runtime-Aws-Request-Id`, not the lower-case form; some runtime
    // clients look headers up case-sensitively.
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .title_case_headers(true)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
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
    // Header names made at compile time: parsing a `&str` name on every event was a twentieth
    // of the platform's instructions per warm invoke.
    use http::header::{HeaderName, CONTENT_TYPE};
    const REQUEST_ID: HeaderName = HeaderName::from_static(headers::REQUEST_ID);
    const DEADLINE_MS: HeaderName = HeaderName::from_static(headers::DEADLINE_MS);
    const INVOKED_FUNCTION_ARN: HeaderName = HeaderName::from_static(headers::INVOKED_FUNCTION_ARN);
    const TRACE_ID: HeaderName = HeaderName::from_static(headers::TRACE_ID);
    const CLIENT_CONTEXT: HeaderName = HeaderName::from_static(headers::CLIENT_CONTEXT);
    const COGNITO_IDENTITY: HeaderName = HeaderName::from_static(headers::COGNITO_IDENTITY);
    let mut resp = Response::new(Full::new(inv.payload));
    let h = resp.headers_mut();
    h.reserve(6);
    // The values are moved into the headers (checked, not copied).
    let mut put = |name: HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(value)) {
            h.insert(name, v);
        }
    };
    put(REQUEST_ID, inv.request_id);
    put(INVOKED_FUNCTION_ARN, inv.invoked_function_arn);
    put(TRACE_ID, inv.trace_id);
    if let Some(cc) = inv.client_context {
        put(CLIENT_CONTEXT, cc);
    }
    if let Some(ci) = inv.cognito_identity {
        put(COGNITO_IDENTITY, ci);
    }
    h.insert(DEADLINE_MS, HeaderValue::from(inv.deadline_ms));
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
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
    if let Err(message) = complete(shared, id, outcome) {
        return error(StatusCode::BAD_REQUEST, "InvalidRequestID", message);
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
        Err(message) => error(StatusCode::BAD_REQUEST, "InvalidRequestID", message),
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

/// Deliver the answer to the invocation `id`; `Err` carries the `InvalidRequestID` message.
fn complete(shared: &Shared, id: &str, outcome: Outcome) -> Result<(), &'static str> {
    let mut st = shared.lock();
    match st.current.take() {
        Some((current, tx)) if current == id => {
            let _ = tx.send(outcome);
            st.answered = Some(current);
            Ok(())
        }
        other => {
            st.current = other;
            Err(if st.answered.as_deref() == Some(id) {
                "Invalid request ID: the invocation was already answered"
            } else {
                "Invalid request ID"
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A minimal HTTP/1.1 client: one request per connection.
    async fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head[9..12].parse().unwrap();
        (status, head, raw[split + 4..].to_vec())
    }

    fn invocation(id: &str) -> Invocation {
        Invocation {
            request_id: id.into(),
            payload: Bytes::from_static(b"{\"k\":1}"),
            deadline_ms: 1_700_000_000_000,
            invoked_function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
            trace_id: "Root=1-abc".into(),
            client_context: Some("{\"custom\":{}}".into()),
            cognito_identity: None,
        }
    }

    const NEXT: &str = "/2018-06-01/runtime/invocation/next";

    #[tokio::test]
    async fn next_waits_for_an_invocation_and_carries_its_headers() {
        let mut api = RuntimeApi::bind([127, 0, 0, 1].into()).await.unwrap();
        let ready = api.ready().unwrap();
        let addr = api.addr();
        let next = tokio::spawn(async move { request(addr, "GET", NEXT, &[], b"").await });
        assert!(matches!(ready.await.unwrap(), InitSignal::Ready));
        let _rx = api.dispatch(invocation("r1"));
        let (status, head, body) = next.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, b"{\"k\":1}");
        for expected in [
            "Lambda-Runtime-Aws-Request-Id: r1",
            "Lambda-Runtime-Deadline-Ms: 1700000000000",
            "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:f",
            "Lambda-Runtime-Trace-Id: Root=1-abc",
            "Lambda-Runtime-Client-Context: {\"custom\":{}}",
        ] {
            assert!(head.contains(expected), "missing {expected}: {head}");
        }
        assert!(!head.contains("Cognito"), "absent values send no header");
    }

    /// An attached connection is the same API: `/next` gets the invocation, `/response`
    /// answers it, over one kept-alive connection.
    #[tokio::test]
    async fn an_attached_connection_serves_the_same_api() {
        let mut api = RuntimeApi::bind([127, 0, 0, 1].into()).await.unwrap();
        let ready = api.ready().unwrap();
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        api.attach(ours).unwrap();
        theirs.set_nonblocking(true).unwrap();
        let mut runtime = tokio::net::UnixStream::from_std(theirs).unwrap();
        let read_response = async |runtime: &mut tokio::net::UnixStream| {
            let mut raw = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = runtime.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the connection closed: {raw:?}");
                raw.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&raw).into_owned();
                if let Some(split) = text.find("\r\n\r\n") {
                    let length: usize = text[..split]
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .map_or(0, |v| v.parse().unwrap());
                    if raw.len() >= split + 4 + length {
                        return text;
                    }
                }
            }
        };
        runtime
            .write_all(format!("GET {NEXT} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        assert!(matches!(ready.await.unwrap(), InitSignal::Ready));
        let outcome = api.dispatch(invocation("r9"));
        let next = read_response(&mut runtime).await;
        assert!(next.starts_with("HTTP/1.1 200"), "{next}");
        assert!(next.contains("Lambda-Runtime-Aws-Request-Id: r9"), "{next}");
        assert!(next.ends_with("{\"k\":1}"), "{next}");
        let post = "POST /2018-06-01/runtime/invocation/r9/response HTTP/1.1\r\n\
                    host: x\r\ncontent-length: 4\r\n\r\n\"ok\"";
        runtime.write_all(post.as_bytes()).await.unwrap();
        let accepted = read_response(&mut runtime).await;
        assert!(accepted.starts_with("HTTP/1.1 202"), "{accepted}");
        match outcome.await.unwrap() {
            Outcome::Response { body, .. } => assert_eq!(body, Bytes::from_static(b"\"ok\"")),
            other => panic!("unexpected outcome {other:?}"),
        }
        // Dropping the API ends the attached connection too.
        drop(api);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), runtime.read_to_end(&mut rest));
        assert_eq!(closed.await.expect("the connection closed").unwrap(), 0);
    }

    #[tokio::test]
    async fn a_response_answers_once() {
        let api = RuntimeApi::bind([127, 0, 0, 1].into()).await.unwrap();
        let rx = api.dispatch(invocation("r2"));
        let (status, _, _) = request(api.addr(), "GET", NEXT, &[], b"").await;
        assert_eq!(status, 200);
        let path = "/2018-06-01/runtime/invocation/r2/response";
        let (status, _, body) = request(api.addr(), "POST", path, &[], b"\"ok\"").await;
        assert_eq!(
            (status, body.as_slice()),
            (202, &b"{\"status\":\"OK\"}"[..])
        );
        match rx.await.unwrap() {
            Outcome::Response { body, .. } => assert_eq!(body, "\"ok\""),
            other => panic!("{other:?}"),
        }
        let (status, _, body) = request(api.addr(), "POST", path, &[], b"again").await;
        assert_eq!(status, 400);
        assert!(String::from_utf8_lossy(&body).contains("InvalidRequestID"));
        let (status, _, _) = request(
            api.addr(),
            "POST",
            "/2018-06-01/runtime/invocation/unknown/error",
            &[],
            b"{}",
        )
        .await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn an_error_carries_its_type() {
        let api = RuntimeApi::bind([127, 0, 0, 1].into()).await.unwrap();
        let rx = api.dispatch(invocation("r3"));
        request(api.addr(), "GET", NEXT, &[], b"").await;
        let (status, _, _) = request(
            api.addr(),
            "POST",
            "/2018-06-01/runtime/invocation/r3/error",
            &[("Lambda-Runtime-Function-Error-Type", "Runtime.Custom")],
            b"{\"errorMessage\":\"m\"}",
        )
        .await;
        assert_eq!(status, 202);
        match rx.await.unwrap() {
            Outcome::Error { error_type, body } => {
                assert_eq!(error_type.as_deref(), Some("Runtime.Custom"));
                assert_eq!(body, "{\"errorMessage\":\"m\"}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn init_error_only_before_the_first_next() {
        let mut api = RuntimeApi::bind([127, 0, 0, 1].into()).await.unwrap();
        let ready = api.ready().unwrap();
        let path = "/2018-06-01/runtime/init/error";
        let (status, _, _) = request(
            api.addr(),
            "POST",
            path,
            &[(
                "Lambda-Runtime-Function-Error-Type",
                "Runtime.ImportModuleError",
            )],
            b"{\"errorMessage\":\"no module\"}",
        )
        .await;
        assert_eq!(status, 202);
        match ready.await.unwrap() {
            InitSignal::Error { error_type, body } => {
                assert_eq!(error_type.as_deref(), Some("Runtime.ImportModuleError"));
                assert_eq!(body, "{\"errorMessage\":\"no module\"}");
            }
            InitSignal::Ready => panic!("expected an init error"),
        }
        let (status, _, body) = request(api.addr(), "POST", path, &[], b"{}").await;
        assert_eq!(status, 403);
        assert!(String::from_utf8_lossy(&body).contains("InvalidStateTransition"));
    }

    #[tokio::test]
    async fn an_oversize_response_is_refused_and_reported() {
        let api = RuntimeApi::bind([127, 0, 0, 1].into()).await.unwrap();
        let rx = api.dispatch(invocation("r4"));
        request(api.addr(), "GET", NEXT, &[], b"").await;
        let big = vec![b'x'; MAX_RESPONSE_BYTES + 10];
        let (status, _, body) = request(
            api.addr(),
            "POST",
            "/2018-06-01/runtime/invocation/r4/response",
            &[],
            &big,
        )
        .await;
        assert_eq!(status, 413);
        assert!(String::from_utf8_lossy(&body).contains("RequestEntityTooLarge"));
        assert!(
            matches!(rx.await.unwrap(), Outcome::ResponseTooLarge { size } if size == big.len())
        );
    }

    #[tokio::test]
    async fn unknown_paths_and_shutdown() {
        let mut api = RuntimeApi::bind([127, 0, 0, 1].into()).await.unwrap();
        let ready = api.ready().unwrap();
        let (status, _, _) = request(api.addr(), "GET", "/2018-06-01/runtime/nope", &[], b"").await;
        assert_eq!(status, 404);
        let (status, _, _) = request(api.addr(), "GET", "/elsewhere", &[], b"").await;
        assert_eq!(status, 404);
        // A waiting /next fails once the API is dropped.
        let addr = api.addr();
        let next = tokio::spawn(async move { request(addr, "GET", NEXT, &[], b"").await });
        // The first /next is what signals readiness: once seen, it is waiting.
        assert!(matches!(ready.await.unwrap(), InitSignal::Ready));
        drop(api);
        let res = tokio::time::timeout(Duration::from_secs(5), next).await;
        assert!(res.is_ok(), "a waiting /next must not hang after shutdown");
    }
}
