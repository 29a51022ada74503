//! Invoke: `POST /2015-03-31/functions/{FunctionName}/invocations`.
//!
//! Headers in: `X-Amz-Invocation-Type` (RequestResponse, Event, DryRun), `X-Amz-Log-Type`
//! (None, Tail), `X-Amz-Client-Context` (base64 JSON), `X-Amzn-Trace-Id`. Headers out:
//! `X-Amz-Executed-Version`, `X-Amz-Function-Error`, `X-Amz-Log-Result`.

use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderName, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use lamina_invoke::InvokeRequest;
use lamina_types::invoke::{
    InvocationType, MAX_ASYNC_PAYLOAD, MAX_CLIENT_CONTEXT, MAX_SYNC_PAYLOAD,
};
use lamina_types::validate::InputError;

use crate::error::ApiError;
use crate::functions::resolve;
use crate::{empty, ApiState, Ctx, Resp};

// Header names made at compile time: a name given as `&str` is parsed on every lookup.
const INVOCATION_TYPE: HeaderName = HeaderName::from_static("x-amz-invocation-type");
const LOG_TYPE: HeaderName = HeaderName::from_static("x-amz-log-type");
const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("x-amz-client-context");
const TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");
const EXECUTED_VERSION: HeaderName = HeaderName::from_static("x-amz-executed-version");
const FUNCTION_ERROR: HeaderName = HeaderName::from_static("x-amz-function-error");
const LOG_RESULT: HeaderName = HeaderName::from_static("x-amz-log-result");

fn header<'a>(ctx: &'a Ctx, name: &HeaderName) -> Option<&'a str> {
    ctx.headers.get(name).and_then(|v| v.to_str().ok())
}

/// POST /2015-03-31/functions/{FunctionName}/invocations
pub(crate) async fn invoke(
    state: &ApiState,
    ctx: &Ctx,
    name: &str,
    qualifier: Option<&str>,
    body: Bytes,
) -> Result<Resp, ApiError> {
    let kind_header = header(ctx, &INVOCATION_TYPE);
    let kind = InvocationType::parse(kind_header).ok_or_else(|| {
        InputError::validation(
            "invocationType",
            kind_header.unwrap_or_default(),
            "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
        )
    })?;
    let tail = match header(ctx, &LOG_TYPE) {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(InputError::validation(
                "logType",
                other,
                "Member must satisfy enum value set: [None, Tail]",
            )
            .into())
        }
    };
    let (key, qualifier) = resolve(ctx, name, qualifier)?;
    let size = body.len();
    match kind {
        InvocationType::RequestResponse if size > MAX_SYNC_PAYLOAD => {
            return Err(ApiError::RequestTooLarge(format!(
                "Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the InvokeFunction operation"
            )))
        }
        InvocationType::Event if size > MAX_ASYNC_PAYLOAD => {
            return Err(ApiError::RequestTooLarge(format!(
                "{size} byte payload is too large for the Event invocation type (limit {MAX_ASYNC_PAYLOAD} bytes)"
            )))
        }
        _ => {}
    }
    let payload = if body.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
            return Err(ApiError::InvalidRequestContent(format!(
                "Could not parse request body into json: Could not parse payload into json: {e}"
            )));
        }
        body
    };
    let client_context = match header(ctx, &CLIENT_CONTEXT) {
        None => None,
        Some(cc) => Some(decode_client_context(cc)?),
    };
    let req = InvokeRequest {
        key,
        qualifier,
        payload,
        request_id: ctx.request_id.clone(),
        client_context,
        trace_id: header(ctx, &TRACE_ID).map(str::to_string),
    };
    match kind {
        InvocationType::DryRun => {
            state
                .invoker
                .dry_run(&req.key, req.qualifier.as_deref())
                .await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        InvocationType::Event => {
            state.invoker.enqueue(req).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        InvocationType::RequestResponse => {
            let out = state.invoker.invoke(req).await?;
            let mut resp = Response::new(Full::new(out.body));
            let h = resp.headers_mut();
            h.reserve(4);
            h.insert(
                CONTENT_TYPE,
                out.content_type
                    .and_then(|c| HeaderValue::from_maybe_shared(Bytes::from(c)).ok())
                    .unwrap_or(HeaderValue::from_static("application/json")),
            );
            if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(out.executed_version)) {
                h.insert(EXECUTED_VERSION, v);
            }
            if let Some(e) = out.function_error {
                h.insert(FUNCTION_ERROR, HeaderValue::from_static(e));
            }
            if tail {
                let encoded = base64::engine::general_purpose::STANDARD.encode(&out.log_tail);
                if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(encoded)) {
                    h.insert(LOG_RESULT, v);
                }
            }
            Ok(resp)
        }
    }
}

/// `X-Amz-Client-Context`: base64 of a JSON object, at most 3583 bytes; returns the JSON.
fn decode_client_context(cc: &str) -> Result<String, ApiError> {
    if cc.len() > MAX_CLIENT_CONTEXT {
        return Err(ApiError::InvalidParameterValue(format!(
            "Client context must be at most {MAX_CLIENT_CONTEXT} bytes (base64), got {}",
            cc.len()
        )));
    }
    base64::engine::general_purpose::STANDARD
        .decode(cc)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).is_ok())
        .ok_or_else(|| {
            ApiError::InvalidRequestContent(
                "Client context must be a valid Base64-encoded JSON object.".into(),
            )
        })
}
