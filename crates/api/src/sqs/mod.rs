//! An SQS-compatible queue service on the Lambda API's listener, so dead-letter queues and
//! destinations have a target the aws CLI, boto3 and the SDKs can read.
//!
//! Which service a request is for is decided from the request itself ([`protocol`]): an
//! `X-Amz-Target: AmazonSQS.{Action}` header is the JSON 1.0 protocol current clients send; a
//! form-encoded `POST` with `Action=` to `/` or a queue URL path is the query protocol older
//! clients send. Both are turned into one JSON input ([`query::to_input`] for the query
//! protocol), run by the same operation ([`ops`]), and answered as JSON or as XML
//! ([`query::to_xml`]). Errors are [`crate::error::SqsError`].
//!
//! Queues are `arn:aws:sqs:{region}:{account}:{name}` with URLs
//! `http://{Host}/{account}/{name}` on lamina's endpoint; their messages live in the store.

mod digest;
pub(crate) mod ops;
mod query;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

use crate::error::SqsError;
use crate::{ApiState, Ctx, Resp};

/// How an SQS request is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// JSON 1.0, with the action from `X-Amz-Target`.
    Json(String),
    /// Form-encoded query protocol (`Action=` in the body).
    Query,
}

const X_AMZ_TARGET: http::header::HeaderName =
    http::header::HeaderName::from_static("x-amz-target");

/// Whether a request is for the SQS service, and in which protocol.
pub(crate) fn protocol(method: &Method, path: &str, headers: &HeaderMap) -> Option<Protocol> {
    if let Some(action) = headers
        .get(X_AMZ_TARGET)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("AmazonSQS."))
    {
        return Some(Protocol::Json(action.to_string()));
    }
    if method != Method::POST {
        return None;
    }
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let queue_path = || {
        let mut segments = path.trim_matches('/').split('/');
        let account = segments.next().unwrap_or_default();
        account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && segments.next().is_some()
            && segments.next().is_none()
    };
    (form && (path == "/" || queue_path())).then_some(Protocol::Query)
}

/// Serve one SQS request.
pub(crate) async fn handle(
    state: &ApiState,
    ctx: &Ctx,
    protocol: Protocol,
    path: &str,
    body: Bytes,
) -> Resp {
    match protocol {
        Protocol::Json(action) => {
            let input = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(serde_json::Value::Object(Default::default()))
            } else {
                serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .filter(serde_json::Value::is_object)
                    .ok_or_else(|| {
                        SqsError::MalformedRequest("The request body is not a JSON object".into())
                    })
            };
            let result = match input {
                Ok(input) => ops::run(state, ctx, &action, input).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(out) => json_response(&out),
                Err(e) => e.to_json_response(),
            }
        }
        Protocol::Query => {
            let (action, input) = query::to_input(&body, path);
            let result = match action {
                Some(action) => ops::run(state, ctx, &action, input)
                    .await
                    .map(|out| (action, out)),
                None => Err(SqsError::MissingParameter("Action".into())),
            };
            match result {
                Ok((action, out)) => xml_response(
                    StatusCode::OK,
                    query::to_xml(&action, &out, &ctx.request_id),
                ),
                Err(e) => xml_response(e.status(), query::error_xml(&e, &ctx.request_id)),
            }
        }
    }
}

fn json_response(value: &serde_json::Value) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    resp
}

fn xml_response(status: StatusCode, body: String) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/xml"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_comes_from_the_request() {
        let mut h = HeaderMap::new();
        assert_eq!(protocol(&Method::POST, "/", &h), None);
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        assert_eq!(protocol(&Method::POST, "/", &h), Some(Protocol::Query));
        assert_eq!(
            protocol(&Method::POST, "/000000000000/q", &h),
            Some(Protocol::Query)
        );
        // A Lambda path is never taken for a queue, whatever its content type.
        assert_eq!(
            protocol(&Method::POST, "/2015-03-31/functions/f/invocations", &h),
            None
        );
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("AmazonSQS.ReceiveMessage"),
        );
        assert_eq!(
            protocol(&Method::POST, "/", &h),
            Some(Protocol::Json("ReceiveMessage".into()))
        );
    }
}
