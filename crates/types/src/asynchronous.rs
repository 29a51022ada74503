//! Asynchronous invocation settings: `FunctionEventInvokeConfig` (retries, event age,
//! destinations) as AWS returns it, the destination record, and the ARNs of SQS queues, which
//! are the destinations and dead-letter queues lamina can deliver to.

use serde::{Deserialize, Serialize};

/// `MaximumRetryAttempts` when none is configured.
pub const DEFAULT_MAX_RETRY_ATTEMPTS: u32 = 2;
/// `MaximumEventAgeInSeconds` when none is configured (6 hours).
pub const DEFAULT_MAX_EVENT_AGE_S: u32 = 21_600;
/// The range AWS accepts for `MaximumRetryAttempts`.
pub const RETRY_ATTEMPTS_RANGE: (i64, i64) = (0, 2);
/// The range AWS accepts for `MaximumEventAgeInSeconds`.
pub const EVENT_AGE_RANGE: (i64, i64) = (60, 21_600);

/// `OnSuccess` / `OnFailure`: `{"Destination": arn}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Destination {
    /// The target's ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// `DestinationConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationConfig {
    /// Where the record of a successful invocation goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Destination>,
    /// Where the record of a finally failed invocation goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Destination>,
}

impl DestinationConfig {
    /// The `OnSuccess` ARN, if one is set.
    pub fn success_arn(&self) -> Option<&str> {
        self.on_success.as_ref()?.destination.as_deref()
    }

    /// The `OnFailure` ARN, if one is set.
    pub fn failure_arn(&self) -> Option<&str> {
        self.on_failure.as_ref()?.destination.as_deref()
    }
}

/// A stored `FunctionEventInvokeConfig` of one version or alias (without its `FunctionArn`,
/// which the API derives from where it is stored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventInvokeConfig {
    /// 0-2; unset means [`DEFAULT_MAX_RETRY_ATTEMPTS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_retry_attempts: Option<u32>,
    /// 60-21600; unset means [`DEFAULT_MAX_EVENT_AGE_S`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_event_age_in_seconds: Option<u32>,
    /// Destinations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_config: Option<DestinationConfig>,
    /// Epoch seconds (a JSON number, as the model's `timestamp` type wants).
    pub last_modified: f64,
}

impl EventInvokeConfig {
    /// Retries after the first attempt.
    pub fn retries(&self) -> u32 {
        self.maximum_retry_attempts
            .unwrap_or(DEFAULT_MAX_RETRY_ATTEMPTS)
    }

    /// The event age limit, seconds.
    pub fn max_age_s(&self) -> u32 {
        self.maximum_event_age_in_seconds
            .unwrap_or(DEFAULT_MAX_EVENT_AGE_S)
    }
}

/// An SQS queue named by account, region and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    /// Account id.
    pub account: String,
    /// Region.
    pub region: String,
    /// Queue name.
    pub name: String,
}

impl QueueKey {
    /// `arn:aws:sqs:{region}:{account}:{name}`.
    pub fn arn(&self) -> String {
        format!("arn:aws:sqs:{}:{}:{}", self.region, self.account, self.name)
    }

    /// Parse a queue ARN.
    pub fn from_arn(arn: &str) -> Option<QueueKey> {
        let rest = arn.strip_prefix("arn:aws:sqs:")?;
        let mut parts = rest.splitn(3, ':');
        let region = parts.next()?;
        let account = parts.next()?;
        let name = parts.next()?;
        (!region.is_empty() && !account.is_empty() && is_queue_name(name)).then(|| QueueKey {
            account: account.to_string(),
            region: region.to_string(),
            name: name.to_string(),
        })
    }
}

impl std::fmt::Display for QueueKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.arn())
    }
}

/// SQS's queue name rule: 1-80 of `[A-Za-z0-9_-]`, optionally ending in `.fifo`.
pub fn is_queue_name(name: &str) -> bool {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 80
        && !base.is_empty()
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why an asynchronous invocation ended, as a destination record's `condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// It ran and returned a response.
    Success,
    /// Every attempt failed.
    RetriesExhausted,
    /// It became older than `MaximumEventAgeInSeconds` before it could succeed.
    EventAgeExceeded,
    /// The function's reserved concurrency is 0, so it never ran.
    ZeroReservedConcurrency,
}

impl Condition {
    /// The record's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
            Condition::ZeroReservedConcurrency => "ZeroReservedConcurrency",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arns_round_trip() {
        let k = QueueKey::from_arn("arn:aws:sqs:us-east-1:000000000000:dlq-1").unwrap();
        assert_eq!(k.name, "dlq-1");
        assert_eq!(k.arn(), "arn:aws:sqs:us-east-1:000000000000:dlq-1");
        assert!(QueueKey::from_arn("arn:aws:sqs:us-east-1:000000000000:bad name").is_none());
        assert!(QueueKey::from_arn("arn:aws:lambda:us-east-1:000000000000:function:f").is_none());
    }

    #[test]
    fn queue_names() {
        assert!(is_queue_name("a"));
        assert!(is_queue_name("q.fifo"));
        assert!(!is_queue_name(".fifo"));
        assert!(!is_queue_name(&"x".repeat(81)));
        assert!(!is_queue_name("a.b"));
    }
}
