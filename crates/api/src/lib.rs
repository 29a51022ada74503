//! lamina's HTTP front: the AWS Lambda REST API (rest-json protocol) on one listener.
//!
//! A request's walk: [`auth::caller`] identifies the caller (access key, region from the SigV4
//! scope) → [`operation::Operation::parse`] turns method + path + query into one `Operation`
//! variant → the handler of its family ([`functions`], [`tags`], [`invoke`]) does the work →
//! errors become AWS's shape in [`error`]. Every response carries `x-amzn-RequestId`; for
//! `Invoke` it is also the invocation's request id.
//!
//! The same listener serves an SQS-compatible queue service ([`sqs`]): a request with
//! `X-Amz-Target: AmazonSQS.*` or a form-encoded `Action=` is routed there before the Lambda
//! router sees it.
//!
//! Served on plain hyper (HTTP/1.1 keep-alive, `TCP_NODELAY`), not a framework router: one
//! `match` in `operation.rs` is the whole API surface.

mod aliases;
pub mod auth;
mod concurrency;
pub mod error;
mod event_config;
mod functions;
mod invoke;
mod layers;
pub mod operation;
mod page;
pub mod provisioned;
mod sqs;
mod tags;
mod versions;

pub use functions::{settle, settle_all};

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use lamina_invoke::Invoker;
use lamina_store::blobs::Blobs;
use lamina_store::Store;
use tokio::net::TcpListener;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::operation::Operation;

/// The largest request body read: a CreateFunction with a 50 MB zip in base64.
pub const MAX_REQUEST_BYTES: usize = 69_905_067;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState {
    /// Control-plane state.
    pub store: Arc<dyn Store>,
    /// Deployment packages.
    pub blobs: Blobs,
    /// The invocation service.
    pub invoker: Invoker,
    /// Key that signs `Code.Location` download URLs.
    pub url_key: [u8; 32],
}

type Resp = Response<Full<Bytes>>;

/// Serve the API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<ApiState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Everything a handler may need of the request besides its body.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) caller: Caller,
    pub(crate) request_id: String,
    pub(crate) headers: http::HeaderMap,
    /// `Host` as the client sent it, for URLs that point back at lamina.
    pub(crate) host: String,
}

/// A new request id (a UUID, written without the formatting machinery: this runs per request).
fn new_request_id() -> String {
    let mut buf = uuid::Uuid::encode_buffer();
    uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
}

/// `x-amzn-RequestId`, on every response (a name made at compile time is not parsed again).
const REQUEST_ID: http::header::HeaderName =
    http::header::HeaderName::from_static("x-amzn-requestid");

async fn handle(state: &ApiState, req: Request<Incoming>) -> Resp {
    let request_id = new_request_id();
    let mut resp = respond(state, req, request_id.clone()).await;
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(request_id)) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// Serve one request of either service (the caller adds `x-amzn-RequestId`).
async fn respond(state: &ApiState, req: Request<Incoming>, request_id: String) -> Resp {
    let (parts, body) = req.into_parts();
    let query = parts.uri.query();
    let caller = auth::caller(&parts.headers, query);
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    if let Some(protocol) = sqs::protocol(&parts.method, parts.uri.path(), &parts.headers) {
        let ctx = Ctx {
            caller,
            request_id,
            host,
            headers: parts.headers,
        };
        return match read_body(body, "SQS").await {
            Ok(body) => sqs::handle(state, &ctx, protocol, parts.uri.path(), body).await,
            Err(e) => e.to_response(),
        };
    }
    let result = match Operation::parse(&parts.method, parts.uri.path(), query) {
        Ok(op) => {
            let ctx = Ctx {
                caller,
                request_id,
                host,
                headers: parts.headers,
            };
            match read_body(body, op.name()).await {
                Ok(body) => dispatch(state, &ctx, op, body).await,
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| e.to_response())
}

async fn dispatch(
    state: &ApiState,
    ctx: &Ctx,
    op: Operation,
    body: Bytes,
) -> Result<Resp, ApiError> {
    match op {
        Operation::CreateFunction => functions::create(state, ctx, &body).await,
        Operation::ListFunctions { marker, max_items } => {
            functions::list(state, ctx, marker, max_items).await
        }
        Operation::GetFunction { name, qualifier } => {
            functions::get(state, ctx, &name, qualifier.as_deref()).await
        }
        Operation::GetFunctionConfiguration { name, qualifier } => {
            functions::get_configuration(state, ctx, &name, qualifier.as_deref()).await
        }
        Operation::UpdateFunctionCode { name } => {
            functions::update_code(state, ctx, &name, &body).await
        }
        Operation::UpdateFunctionConfiguration { name } => {
            functions::update_configuration(state, ctx, &name, &body).await
        }
        Operation::DeleteFunction { name, qualifier } => {
            functions::delete(state, ctx, &name, qualifier.as_deref()).await
        }
        Operation::Invoke { name, qualifier } => {
            invoke::invoke(state, ctx, &name, qualifier.as_deref(), body).await
        }
        Operation::GetAccountSettings => functions::account_settings(state, ctx).await,
        Operation::PublishLayerVersion { layer } => {
            layers::publish(state, ctx, &layer, &body).await
        }
        Operation::GetLayerVersion { layer, version } => {
            layers::get(state, ctx, &layer, &version).await
        }
        Operation::GetLayerVersionByArn { arn } => {
            layers::get_by_arn(state, ctx, arn.as_deref()).await
        }
        Operation::ListLayers {
            filters,
            marker,
            max_items,
        } => layers::list_layers(state, ctx, filters, marker, max_items).await,
        Operation::ListLayerVersions {
            layer,
            filters,
            marker,
            max_items,
        } => layers::list_versions(state, ctx, &layer, filters, marker, max_items).await,
        Operation::DeleteLayerVersion { layer, version } => {
            layers::delete(state, ctx, &layer, &version).await
        }
        Operation::AddLayerVersionPermission {
            layer,
            version,
            revision_id,
        } => {
            layers::add_permission(state, ctx, &layer, &version, revision_id.as_deref(), &body)
                .await
        }
        Operation::GetLayerVersionPolicy { layer, version } => {
            layers::get_policy(state, ctx, &layer, &version).await
        }
        Operation::RemoveLayerVersionPermission {
            layer,
            version,
            statement_id,
            revision_id,
        } => {
            layers::remove_permission(
                state,
                ctx,
                &layer,
                &version,
                &statement_id,
                revision_id.as_deref(),
            )
            .await
        }
        Operation::PutProvisionedConcurrencyConfig { name, qualifier } => {
            provisioned::put(state, ctx, &name, qualifier.as_deref(), &body).await
        }
        Operation::GetProvisionedConcurrencyConfig { name, qualifier } => {
            provisioned::get(state, ctx, &name, qualifier.as_deref()).await
        }
        Operation::DeleteProvisionedConcurrencyConfig { name, qualifier } => {
            provisioned::delete(state, ctx, &name, qualifier.as_deref()).await
        }
        Operation::ListProvisionedConcurrencyConfigs {
            name,
            marker,
            max_items,
        } => provisioned::list(state, ctx, &name, marker, max_items).await,
        Operation::PublishVersion { name } => versions::publish(state, ctx, &name, &body).await,
        Operation::ListVersionsByFunction {
            name,
            marker,
            max_items,
        } => versions::list(state, ctx, &name, marker, max_items).await,
        Operation::CreateAlias { name } => aliases::create(state, ctx, &name, &body).await,
        Operation::ListAliases {
            name,
            function_version,
            marker,
            max_items,
        } => aliases::list(state, ctx, &name, function_version, marker, max_items).await,
        Operation::GetAlias { name, alias } => aliases::get(state, ctx, &name, &alias).await,
        Operation::UpdateAlias { name, alias } => {
            aliases::update(state, ctx, &name, &alias, &body).await
        }
        Operation::DeleteAlias { name, alias } => aliases::delete(state, ctx, &name, &alias).await,
        Operation::PutFunctionConcurrency { name } => {
            concurrency::put(state, ctx, &name, &body).await
        }
        Operation::GetFunctionConcurrency { name } => concurrency::get(state, ctx, &name).await,
        Operation::DeleteFunctionConcurrency { name } => {
            concurrency::delete(state, ctx, &name).await
        }
        Operation::TagResource { resource } => tags::tag(state, ctx, &resource, &body).await,
        Operation::UntagResource { resource, keys } => {
            tags::untag(state, ctx, &resource, &keys).await
        }
        Operation::ListTags { resource } => tags::list(state, ctx, &resource).await,
        Operation::GetFunctionCodeSigningConfig { name } => {
            functions::code_signing_config(state, ctx, &name).await
        }
        Operation::PutFunctionEventInvokeConfig { name, qualifier } => {
            event_config::put(state, ctx, &name, qualifier.as_deref(), &body).await
        }
        Operation::UpdateFunctionEventInvokeConfig { name, qualifier } => {
            event_config::update(state, ctx, &name, qualifier.as_deref(), &body).await
        }
        Operation::GetFunctionEventInvokeConfig { name, qualifier } => {
            event_config::get(state, ctx, &name, qualifier.as_deref()).await
        }
        Operation::DeleteFunctionEventInvokeConfig { name, qualifier } => {
            event_config::delete(state, ctx, &name, qualifier.as_deref()).await
        }
        Operation::ListFunctionEventInvokeConfigs {
            name,
            marker,
            max_items,
        } => event_config::list(state, ctx, &name, marker, max_items).await,
        Operation::DownloadCode {
            sha256,
            expires,
            signature,
        } => {
            functions::download_code(state, &sha256, expires.as_deref(), signature.as_deref()).await
        }
    }
}

/// Past this many bytes an oversize body is no longer drained; the connection is closed.
const MAX_DRAINED_BYTES: usize = 4 * MAX_REQUEST_BYTES;

/// Read the whole body, refusing more than [`MAX_REQUEST_BYTES`]. An oversize body is still
/// read to its end (up to [`MAX_DRAINED_BYTES`]) and discarded, so a client that is still sending
/// receives the 413 rather than a broken pipe, and its connection stays usable.
async fn read_body(mut body: Incoming, op: &str) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::InvalidRequestContent(format!("could not read the request body: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > MAX_REQUEST_BYTES {
                buf = Vec::new();
                if seen > MAX_DRAINED_BYTES {
                    break;
                }
                continue;
            }
            buf.extend_from_slice(&data);
        }
    }
    if seen > MAX_REQUEST_BYTES {
        let op = if op == "Invoke" { "InvokeFunction" } else { op };
        return Err(ApiError::RequestTooLarge(format!(
            "Request must be smaller than {MAX_REQUEST_BYTES} bytes for the {op} operation"
        )));
    }
    Ok(Bytes::from(buf))
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Resp {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

/// An empty response.
pub(crate) fn empty(status: StatusCode) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// Parse a JSON request body into `T`.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::InvalidRequestContent(format!("could not parse the request body: {e}"))
    })
}
