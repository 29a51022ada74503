//! The async worker: runs accepted `Event` invocations and keeps Lambda's promise that an
//! accepted event runs, is retried, or lands somewhere the user can see it.
//!
//! - Each event is a task that waits until it is due, takes one of [`AsyncSettings::concurrency`]
//!   worker slots and runs through the same path as a sync invoke (so the function's
//!   concurrency limits apply).
//! - A function error (an error response, a timeout, a crash) is retried up to the
//!   `MaximumRetryAttempts` of the event invoke config, after [`AsyncSettings::retry_delays`]
//!   (AWS: about 1 then 2 minutes). The attempt count and due time are written to the store
//!   before the task waits, so a restart resumes the delayed retry.
//! - A throttle or a system error does not use a retry: the event backs off exponentially
//!   ([`AsyncSettings::backoff`], AWS: 1 s up to 5 min), waking early when the function's
//!   concurrency frees up, until `MaximumEventAgeInSeconds`.
//! - Reserved concurrency 0 sends the event straight to the failure path.
//! - The end: a success goes to the `OnSuccess` destination; a final failure to `OnFailure`
//!   and to the version's `DeadLetterConfig` queue. The event is deleted from the store only
//!   after that. A delivery that fails is logged, counted ([`AsyncStats`]) and kept in the
//!   store's `undelivered` records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lamina_store::{AsyncEvent, NewMessage, StoreError, Undelivered};
use lamina_types::asynchronous::{Condition, EventInvokeConfig, QueueKey};
use lamina_types::function::state;
use lamina_types::names::{FunctionRef, LATEST};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use crate::{InvokeError, InvokeRequest, Invoker};

/// How the async worker retries and backs off.
#[derive(Debug, Clone)]
pub struct AsyncSettings {
    /// Wait before the 2nd, 3rd, ... attempt after a function error; the last entry repeats.
    pub retry_delays: Vec<Duration>,
    /// The first and the largest back-off after a throttle or system error.
    pub backoff: (Duration, Duration),
    /// Events running at once.
    pub concurrency: usize,
}

impl Default for AsyncSettings {
    fn default() -> Self {
        AsyncSettings {
            retry_delays: vec![Duration::from_secs(60), Duration::from_secs(120)],
            backoff: (Duration::from_secs(1), Duration::from_secs(300)),
            concurrency: 64,
        }
    }
}

/// Counters of the async worker.
#[derive(Debug, Default)]
pub struct AsyncStats {
    /// Events that ran successfully.
    pub succeeded: AtomicU64,
    /// Events that finally failed (retries exhausted, too old, zero concurrency).
    pub failed: AtomicU64,
    /// Records delivered to a destination or dead-letter queue.
    pub delivered: AtomicU64,
    /// Deliveries that failed (kept in the store's undelivered records).
    pub delivery_failures: AtomicU64,
}

/// What one attempt of an event ran into.
#[derive(Debug)]
struct Ran {
    executed_version: String,
    function_error: Option<&'static str>,
    body: Bytes,
}

/// How one attempt ended.
enum Step {
    /// Finished: this condition, and the last run if there was one.
    Finish(Condition, Option<Ran>),
    /// A function error with retries left: run again after this many ms.
    Retry(Ran, Duration),
    /// Throttled or a platform failure: try again after a back-off.
    Backoff(String),
    /// The function is gone or cannot run; nothing to deliver.
    Drop(String),
}

pub(crate) async fn worker(invoker: Invoker, mut rx: mpsc::UnboundedReceiver<AsyncEvent>) {
    let slots = Arc::new(Semaphore::new(invoker.inner.settings.concurrency.max(1)));
    while let Some(event) = rx.recv().await {
        let invoker = invoker.clone();
        let slots = slots.clone();
        tokio::spawn(async move { run_event(&invoker, &slots, event).await });
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn sleep_until_ms(due_ms: i64) {
    let wait = due_ms - now_ms();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

async fn run_event(invoker: &Invoker, slots: &Semaphore, mut event: AsyncEvent) {
    let store = invoker.inner.store.clone();
    let mut last: Option<Ran> = None;
    loop {
        sleep_until_ms(event.due_at_ms).await;
        let step = {
            let Ok(_slot) = slots.acquire().await else {
                return;
            };
            attempt(invoker, &event).await
        };
        match step {
            Step::Finish(condition, ran) => {
                // Every failed run before this one counted an attempt.
                let count = event.attempts + u32::from(ran.is_some());
                finish(invoker, &event, condition, ran.or(last.take()), count).await;
                break;
            }
            Step::Retry(ran, delay) => {
                event.attempts += 1;
                event.due_at_ms = now_ms() + delay.as_millis() as i64;
                // Durable before waiting: a restart resumes the delayed retry.
                if let Err(e) = store
                    .reschedule_event(
                        &event.request_id,
                        event.attempts,
                        event.throttles,
                        event.due_at_ms,
                    )
                    .await
                {
                    tracing::warn!(request_id = %event.request_id, error = %e, "cannot record a retry; it runs from the store after a restart if this process dies");
                }
                last = Some(ran);
            }
            Step::Backoff(why) => {
                let (first, max) = invoker.inner.settings.backoff;
                let factor = 1u32 << event.throttles.min(16);
                let delay = first.saturating_mul(factor).min(max);
                event.throttles += 1;
                let config = invoker.event_config(&event).await.unwrap_or_default();
                let deadline = event.enqueued_at_ms + i64::from(config.max_age_s()) * 1000;
                if now_ms() + delay.as_millis() as i64 > deadline {
                    let count = event.attempts;
                    finish(
                        invoker,
                        &event,
                        Condition::EventAgeExceeded,
                        last.take(),
                        count,
                    )
                    .await;
                    break;
                }
                tracing::debug!(request_id = %event.request_id, %why, ?delay, "async invocation backs off");
                // Throttle state is not written: after a restart the event simply runs again.
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = invoker.capacity_freed(&event.key) => {}
                }
                event.due_at_ms = 0;
            }
            Step::Drop(why) => {
                tracing::warn!(request_id = %event.request_id, function = %event.key, %why, "async event dropped");
                forget(invoker, &event).await;
                break;
            }
        }
    }
}

/// Run the event once (unless it is too old or cannot run at all).
async fn attempt(invoker: &Invoker, event: &AsyncEvent) -> Step {
    let config = match invoker.event_config(event).await {
        Ok(c) => c,
        Err(InvokeError::NotFound(arn)) => return Step::Drop(format!("{arn} no longer exists")),
        Err(e) => return Step::Backoff(e.to_string()),
    };
    let age_limit = event.enqueued_at_ms + i64::from(config.max_age_s()) * 1000;
    if now_ms() > age_limit {
        return Step::Finish(Condition::EventAgeExceeded, None);
    }
    match invoker.limits(&event.key).await {
        Ok((Some(0), _)) => return Step::Finish(Condition::ZeroReservedConcurrency, None),
        Ok(_) => {}
        Err(InvokeError::NotFound(arn)) => return Step::Drop(format!("{arn} no longer exists")),
        Err(e) => return Step::Backoff(e.to_string()),
    }
    let req = InvokeRequest {
        key: event.key.clone(),
        qualifier: event.qualifier.clone(),
        payload: Bytes::from(event.payload.clone()),
        request_id: event.request_id.clone(),
        client_context: None,
        trace_id: None,
    };
    match invoker.invoke(req).await {
        Ok(resp) => {
            let ran = Ran {
                executed_version: resp.executed_version,
                function_error: resp.function_error,
                body: resp.body,
            };
            if ran.function_error.is_none() {
                return Step::Finish(Condition::Success, Some(ran));
            }
            // `attempts` counts earlier failed runs; this one is attempt `attempts + 1`.
            if event.attempts >= config.retries() {
                return Step::Finish(Condition::RetriesExhausted, Some(ran));
            }
            let delays = &invoker.inner.settings.retry_delays;
            let delay = delays
                .get(event.attempts as usize)
                .or(delays.last())
                .copied()
                .unwrap_or_default();
            if now_ms() + delay.as_millis() as i64 > age_limit {
                return Step::Finish(Condition::EventAgeExceeded, Some(ran));
            }
            Step::Retry(ran, delay)
        }
        Err(InvokeError::NotFound(arn)) => Step::Drop(format!("{arn} no longer exists")),
        Err(InvokeError::NotActive { state: s }) if s != state::PENDING => {
            Step::Drop(format!("the function cannot run (state {s})"))
        }
        Err(e) => Step::Backoff(e.to_string()),
    }
}

/// A JSON document as JSON, anything else as a string.
fn as_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The destination record (the documented shape).
fn record(event: &AsyncEvent, condition: Condition, ran: &Option<Ran>, count: u32) -> Value {
    let mut r = json!({
        "version": "1.0",
        "timestamp": lamina_types::time::iso_millis(chrono::Utc::now()),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": event.key.qualified_arn(event.qualifier.as_deref().unwrap_or(LATEST)),
            "condition": condition.as_str(),
            "approximateInvokeCount": count,
        },
        "requestPayload": as_json(&event.payload),
    });
    if let Some(ran) = ran {
        let mut ctx = json!({ "statusCode": 200, "executedVersion": ran.executed_version });
        if let Some(e) = ran.function_error {
            ctx["functionError"] = json!(e);
        }
        r["responseContext"] = ctx;
        r["responsePayload"] = as_json(&ran.body);
    }
    r
}

/// Deliver the outcome (destinations, dead-letter queue), then forget the event.
async fn finish(
    invoker: &Invoker,
    event: &AsyncEvent,
    condition: Condition,
    ran: Option<Ran>,
    count: u32,
) {
    let stats = &invoker.inner.stats;
    let config = invoker.event_config(event).await.unwrap_or_default();
    let destinations = config.destination_config.clone().unwrap_or_default();
    if condition == Condition::Success {
        stats.succeeded.fetch_add(1, Ordering::Relaxed);
        if let Some(arn) = destinations.success_arn() {
            let body = record(event, condition, &ran, count).to_string();
            deliver(invoker, event, arn, body, "{}".into()).await;
        }
    } else {
        stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::info!(request_id = %event.request_id, function = %event.key, condition = condition.as_str(), count, "async invocation failed for good");
        if let Some(arn) = destinations.failure_arn() {
            let body = record(event, condition, &ran, count).to_string();
            deliver(invoker, event, arn, body, "{}".into()).await;
        }
        if let Some(dlq) = dead_letter_target(invoker, event).await {
            let (code, message) = match &ran {
                Some(r) => (
                    "200".to_string(),
                    error_message(&r.body).unwrap_or_else(|| condition.as_str().to_string()),
                ),
                None => ("429".to_string(), condition.as_str().to_string()),
            };
            let message: String = message.chars().take(1024).collect();
            let attrs = json!({
                "RequestID": {"DataType": "String", "StringValue": event.request_id},
                "ErrorCode": {"DataType": "Number", "StringValue": code},
                "ErrorMessage": {"DataType": "String", "StringValue": message},
            });
            let body = String::from_utf8_lossy(&event.payload).into_owned();
            deliver(invoker, event, &dlq, body, attrs.to_string()).await;
        }
    }
    forget(invoker, event).await;
}

/// `errorMessage` of a Lambda error document.
fn error_message(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("errorMessage")?
        .as_str()
        .map(str::to_string)
}

/// The `DeadLetterConfig.TargetArn` of the version the event invokes.
async fn dead_letter_target(invoker: &Invoker, event: &AsyncEvent) -> Option<String> {
    let version = invoker
        .resolve(&event.key, event.qualifier.as_deref())
        .await
        .ok()?;
    version
        .config
        .dead_letter_config
        .as_ref()?
        .get("TargetArn")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

async fn forget(invoker: &Invoker, event: &AsyncEvent) {
    if let Err(e) = invoker.inner.store.delete_event(&event.request_id).await {
        tracing::warn!(request_id = %event.request_id, error = %e, "cannot forget a finished async event; it will run again after a restart");
    }
}

/// Deliver a record (or a dead-lettered event) to an SQS queue or a Lambda function.
async fn deliver(invoker: &Invoker, event: &AsyncEvent, arn: &str, body: String, attrs: String) {
    let result = deliver_to(invoker, event, arn, body.clone(), attrs).await;
    let stats = &invoker.inner.stats;
    match result {
        Ok(()) => {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => {
            let n = stats.delivery_failures.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(request_id = %event.request_id, destination = %arn, %error, failures = n, "delivery failed; the record is kept in the store");
            let kept = invoker
                .inner
                .store
                .put_undelivered(&Undelivered {
                    request_id: event.request_id.clone(),
                    destination: arn.to_string(),
                    record: body,
                    error,
                })
                .await;
            if let Err(e) = kept {
                tracing::error!(request_id = %event.request_id, error = %e, "cannot keep an undelivered record");
            }
        }
    }
}

async fn deliver_to(
    invoker: &Invoker,
    event: &AsyncEvent,
    arn: &str,
    body: String,
    attrs: String,
) -> Result<(), String> {
    if let Some(queue) = QueueKey::from_arn(arn) {
        let message = NewMessage {
            message_id: uuid::Uuid::new_v4().to_string(),
            body,
            attributes: attrs,
            delay_ms: 0,
        };
        return invoker
            .inner
            .store
            .send_messages(&queue, &[message], now_ms())
            .await
            .map_err(|e| match e {
                StoreError::QueueNotFound(q) => format!("the queue {q} does not exist"),
                other => other.to_string(),
            });
    }
    let target = FunctionRef::parse(arn).map_err(|e| e.to_string())?;
    let (key, qualifier) = target
        .resolve(&event.key.account, &event.key.region, None)
        .map_err(|e| format!("{e:?}"))?;
    invoker
        .enqueue(InvokeRequest {
            key,
            qualifier,
            payload: Bytes::from(body),
            request_id: uuid::Uuid::new_v4().to_string(),
            client_context: None,
            trace_id: None,
        })
        .await
        .map_err(|e| e.to_string())
}

impl Invoker {
    /// The event invoke config that applies to an event (its qualifier's, `$LATEST` when
    /// unqualified); the defaults when none is set.
    async fn event_config(&self, event: &AsyncEvent) -> Result<EventInvokeConfig, InvokeError> {
        let qualifier = event.qualifier.as_deref().unwrap_or(LATEST);
        let generation = self.inner.store.generation();
        let cache_key = (event.key.clone(), qualifier.to_string());
        {
            let mut cache = crate::lock(&self.inner.cache);
            cache.check(generation);
            if let Some(c) = cache.event_configs.get(&cache_key) {
                return Ok(c.as_ref().clone());
            }
        }
        let found = self
            .inner
            .store
            .get_event_config(&event.key, qualifier)
            .await?
            .unwrap_or_default();
        let found = Arc::new(found);
        let mut cache = crate::lock(&self.inner.cache);
        if cache.generation == generation {
            cache.event_configs.insert(cache_key, found.clone());
        }
        Ok(found.as_ref().clone())
    }

    /// The async worker's counters.
    pub fn async_stats(&self) -> &AsyncStats {
        &self.inner.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamina_types::names::FunctionKey;

    fn event() -> AsyncEvent {
        AsyncEvent {
            request_id: "rid".into(),
            key: FunctionKey {
                account: "000000000000".into(),
                region: "us-east-1".into(),
                name: "f".into(),
            },
            qualifier: None,
            payload: br#"{"a":1}"#.to_vec(),
            enqueued_at_ms: 0,
            attempts: 2,
            due_at_ms: 0,
            throttles: 0,
        }
    }

    #[test]
    fn failure_records_have_the_documented_shape() {
        let ran = Some(Ran {
            executed_version: "$LATEST".into(),
            function_error: Some("Unhandled"),
            body: Bytes::from_static(br#"{"errorMessage":"boom","errorType":"Exception"}"#),
        });
        let r = record(&event(), Condition::RetriesExhausted, &ran, 3);
        assert_eq!(r["version"], "1.0");
        assert_eq!(r["requestContext"]["requestId"], "rid");
        assert_eq!(
            r["requestContext"]["functionArn"],
            "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST"
        );
        assert_eq!(r["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(r["requestPayload"], json!({"a": 1}));
        assert_eq!(r["responseContext"]["functionError"], "Unhandled");
        assert_eq!(r["responsePayload"]["errorMessage"], "boom");
        let never = record(&event(), Condition::ZeroReservedConcurrency, &None, 0);
        assert!(never.get("responseContext").is_none());
        assert!(never.get("responsePayload").is_none());
    }
}
