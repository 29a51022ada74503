//! What an invocation carries and the error bodies the platform itself writes.

use serde::Serialize;

/// Sync payload limit (request and response), bytes.
pub const MAX_SYNC_PAYLOAD: usize = 6_291_456;
/// What the Runtime API accepts as a response (Lambda allows 100 bytes of slack).
pub const MAX_RUNTIME_RESPONSE: usize = 6_291_556;
/// `Event` payload limit, bytes (1 MB in the current model).
pub const MAX_ASYNC_PAYLOAD: usize = 1_048_576;
/// Largest `X-Amz-Client-Context` (base64), bytes.
pub const MAX_CLIENT_CONTEXT: usize = 3_583;
/// How much of an invocation's log `X-Amz-Log-Result` carries.
pub const LOG_TAIL_BYTES: usize = 4_096;

/// `X-Amz-Invocation-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    /// Synchronous (200).
    RequestResponse,
    /// Asynchronous: stored, then run (202).
    Event,
    /// Check only (204).
    DryRun,
}

impl InvocationType {
    /// Parse the header value (absent means `RequestResponse`).
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("RequestResponse") => Some(Self::RequestResponse),
            Some("Event") => Some(Self::Event),
            Some("DryRun") => Some(Self::DryRun),
            Some(_) => None,
        }
    }
}

/// `{"errorMessage", "errorType"}`: the shape of an error written by the platform rather than
/// the function (timeouts, crashes, oversize responses).
#[derive(Debug, Clone, Serialize)]
pub struct PlatformError<'a> {
    /// What happened.
    #[serde(rename = "errorMessage")]
    pub error_message: &'a str,
    /// `Runtime.ExitError`, `Sandbox.Timedout`, ...
    #[serde(rename = "errorType")]
    pub error_type: &'a str,
}

impl PlatformError<'_> {
    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
