//! Asynchronous invocation through the real clients: event invoke configs, retries of function
//! errors and timeouts, event age, reserved concurrency 0, throttles, destinations (SQS and
//! Lambda) and dead-letter queues. The server runs with short retry delays.

mod common;

use std::time::Duration;

use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    DeadLetterConfig, DestinationConfig, InvocationType, OnFailure, OnSuccess, Runtime,
};
use aws_sdk_lambda::Client;
use common::*;
use serde_json::{json, Value};

const APP: &str = r#"
import json, os, time

def _log(event, context, what):
    d = event.get("dir") if isinstance(event, dict) else None
    if d:
        with open(os.path.join(d, "calls"), "a") as f:
            f.write(json.dumps({"id": context.aws_request_id, "what": what}) + "\n")

def flaky(event, context):
    path = os.path.join(event["dir"], context.aws_request_id + ".count")
    n = int(open(path).read()) if os.path.exists(path) else 0
    n += 1
    with open(path, "w") as f:
        f.write(str(n))
    _log(event, context, "flaky")
    if n <= 2:
        raise RuntimeError("attempt %d fails" % n)
    return {"ok": True, "attempt": n}

def fail(event, context):
    _log(event, context, "fail")
    raise ValueError("always broken")

def slow(event, context):
    _log(event, context, "slow")
    time.sleep(event.get("seconds", 5))
    return {"slept": True}

def ok(event, context):
    _log(event, context, "ok")
    time.sleep(event.get("seconds", 0))
    return {"echo": event}

def crash(event, context):
    _log(event, context, "crash")
    os._exit(3)

def keep(event, context):
    d = event["requestPayload"]["dir"]
    with open(os.path.join(d, "record-" + context.aws_request_id + ".json"), "w") as f:
        json.dump(event, f)
    return {}
"#;

const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:000000000000:";

/// Short retry delays and back-off; functions run as plain processes, so that they can write
/// what they saw to a host directory the test reads.
fn fast_server() -> Server {
    Server::start_with(&[
        "--async-retry-delays",
        "0.3,0.6",
        "--async-backoff",
        "0.1,1",
        "--isolation",
        "process",
    ])
}

/// The same with the default isolation (the namespace sandbox where the host allows it).
fn fast_sandboxed_server() -> Server {
    Server::start_with(&[
        "--async-retry-delays",
        "0.3,0.6",
        "--async-backoff",
        "0.1,1",
    ])
}

async fn function(client: &Client, name: &str, handler: &str, timeout: i32) {
    create_with(
        client,
        name,
        Runtime::Python312,
        &format!("app.{handler}"),
        python_zip(APP),
        |b| b.timeout(timeout),
    )
    .await;
}

async fn event(client: &Client, name: &str, payload: &Value) -> String {
    let resp = client
        .invoke()
        .function_name(name)
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .expect("Event invoke");
    assert_eq!(resp.status_code(), 202);
    resp.request_id().expect("request id").to_string()
}

/// A queue, a function (`handler` of the probe, `timeout` seconds) and its event invoke
/// config: `retries` retries, the maximum age if given, and failures recorded in the queue.
async fn failing_into(
    server: &Server,
    name: &str,
    handler: &str,
    timeout: i32,
    (queue, retries, max_age): (&str, i32, Option<i32>),
) -> Client {
    let client = server.client();
    create_queue(&server.sqs(), queue).await;
    function(&client, name, handler, timeout).await;
    let mut put = client
        .put_function_event_invoke_config()
        .function_name(name)
        .maximum_retry_attempts(retries)
        .destination_config(destinations(None, Some(&format!("{QUEUE_ARN}{queue}"))));
    if let Some(age) = max_age {
        put = put.maximum_event_age_in_seconds(age);
    }
    put.send().await.unwrap();
    client
}

fn destinations(success: Option<&str>, failure: Option<&str>) -> DestinationConfig {
    let mut d = DestinationConfig::builder();
    if let Some(s) = success {
        d = d.on_success(OnSuccess::builder().destination(s).build());
    }
    if let Some(f) = failure {
        d = d.on_failure(OnFailure::builder().destination(f).build());
    }
    d.build()
}

/// The next message of a queue, as JSON, with its message attributes.
async fn next_record(
    server: &Server,
    queue: &str,
) -> (Value, std::collections::HashMap<String, (String, String)>) {
    let url = format!("{}/000000000000/{queue}", server.endpoint);
    let m = receive_one(&server.sqs(), &url, Duration::from_secs(60)).await;
    let body: Value = serde_json::from_str(m.body().unwrap()).expect("a JSON record");
    let attrs = m
        .message_attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        (
                            v.data_type().to_string(),
                            v.string_value().unwrap_or_default().to_string(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (body, attrs)
}

fn calls(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn event_invoke_configs_are_validated_stored_and_listed() {
    let server = Server::start();
    let client = server.client();
    function(&client, "cfg", "ok", 3).await;
    client
        .publish_version()
        .function_name("cfg")
        .send()
        .await
        .unwrap();
    client
        .create_alias()
        .function_name("cfg")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap();
    let put = client
        .put_function_event_invoke_config()
        .function_name("cfg")
        .maximum_retry_attempts(1)
        .maximum_event_age_in_seconds(100)
        .destination_config(destinations(None, Some(&format!("{QUEUE_ARN}failures"))))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.function_arn(),
        Some(qualified_arn("cfg", "$LATEST").as_str())
    );
    assert_eq!(put.maximum_retry_attempts(), Some(1));
    assert_eq!(put.maximum_event_age_in_seconds(), Some(100));
    assert!(put.last_modified().unwrap().secs() > 1_700_000_000);
    assert_eq!(
        put.destination_config()
            .and_then(|d| d.on_failure())
            .and_then(|f| f.destination()),
        Some("arn:aws:sqs:us-east-1:000000000000:failures")
    );
    // Update merges; Put replaces.
    let updated = client
        .update_function_event_invoke_config()
        .function_name("cfg")
        .maximum_retry_attempts(0)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.maximum_retry_attempts(), Some(0));
    assert_eq!(updated.maximum_event_age_in_seconds(), Some(100));
    client
        .put_function_event_invoke_config()
        .function_name("cfg")
        .qualifier("live")
        .maximum_retry_attempts(2)
        .send()
        .await
        .unwrap();
    let got = client
        .get_function_event_invoke_config()
        .function_name("cfg")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.function_arn(),
        Some(qualified_arn("cfg", "live").as_str())
    );
    assert_eq!(got.maximum_event_age_in_seconds(), None);
    let listed = client
        .list_function_event_invoke_configs()
        .function_name("cfg")
        .send()
        .await
        .unwrap();
    let arns: Vec<&str> = listed
        .function_event_invoke_configs()
        .iter()
        .filter_map(|c| c.function_arn())
        .collect();
    assert_eq!(
        arns,
        [
            qualified_arn("cfg", "$LATEST"),
            qualified_arn("cfg", "live")
        ]
    );

    // AWS's ranges and destination checks.
    let err = error_details(
        client
            .put_function_event_invoke_config()
            .function_name("cfg")
            .maximum_retry_attempts(3)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.status, err.code.as_str()),
        (400, "ValidationException")
    );
    assert_eq!(err.message, "1 validation error detected: Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value less than or equal to 2");
    let err = error_details(
        client
            .put_function_event_invoke_config()
            .function_name("cfg")
            .maximum_event_age_in_seconds(59)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(err.message, "1 validation error detected: Value '59' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60");
    let err = error_details(
        client
            .put_function_event_invoke_config()
            .function_name("cfg")
            .destination_config(destinations(
                Some("arn:aws:sns:us-east-1:000000000000:topic"),
                None,
            ))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.status, err.code.as_str()),
        (400, "InvalidParameterValueException")
    );

    // Missing configs and functions.
    client
        .delete_function_event_invoke_config()
        .function_name("cfg")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    let err = error_details(
        client
            .get_function_event_invoke_config()
            .function_name("cfg")
            .qualifier("live")
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.status, err.code.as_str()),
        (404, "ResourceNotFoundException")
    );
    assert_eq!(
        err.message,
        format!(
            "The function {} doesn't have an EventInvokeConfig",
            qualified_arn("cfg", "live")
        )
    );
    let err = error_details(
        client
            .put_function_event_invoke_config()
            .function_name("nope")
            .maximum_retry_attempts(1)
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.status, err.code.as_str()),
        (404, "ResourceNotFoundException")
    );
}

#[tokio::test]
async fn a_flaky_function_succeeds_on_its_third_attempt() {
    let server = fast_server();
    let client = server.client();
    let sqs = server.sqs();
    create_queue(&sqs, "successes").await;
    function(&client, "flaky", "flaky", 10).await;
    client
        .put_function_event_invoke_config()
        .function_name("flaky")
        .destination_config(destinations(Some(&format!("{QUEUE_ARN}successes")), None))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let payload = json!({"dir": dir.path(), "n": 7});
    let id = event(&client, "flaky", &payload).await;
    let (record, _) = next_record(&server, "successes").await;
    assert_eq!(record["version"], "1.0");
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(record["requestContext"]["condition"], "Success");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(
        record["requestContext"]["functionArn"],
        qualified_arn("flaky", "$LATEST").as_str()
    );
    assert_eq!(record["requestPayload"], payload);
    assert_eq!(
        record["responseContext"],
        json!({"statusCode": 200, "executedVersion": "$LATEST"})
    );
    assert_eq!(record["responsePayload"], json!({"ok": true, "attempt": 3}));
    // The runtime saw the request id the 202 carried, on every attempt.
    let seen: Vec<Value> = calls(dir.path());
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|c| c["id"] == id.as_str()));
}

#[tokio::test]
async fn an_always_failing_function_lands_in_on_failure_and_the_dead_letter_queue() {
    let server = fast_server();
    let client = server.client();
    let sqs = server.sqs();
    create_queue(&sqs, "failures").await;
    create_queue(&sqs, "dead").await;
    create_with(
        &client,
        "broken",
        Runtime::Python312,
        "app.fail",
        python_zip(APP),
        |b| {
            b.dead_letter_config(
                DeadLetterConfig::builder()
                    .target_arn(format!("{QUEUE_ARN}dead"))
                    .build(),
            )
        },
    )
    .await;
    client
        .put_function_event_invoke_config()
        .function_name("broken")
        .maximum_retry_attempts(1)
        .destination_config(destinations(None, Some(&format!("{QUEUE_ARN}failures"))))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let payload = json!({"dir": dir.path(), "order": 42});
    let id = event(&client, "broken", &payload).await;

    let (record, _) = next_record(&server, "failures").await;
    let object = record.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "requestContext",
            "requestPayload",
            "responseContext",
            "responsePayload",
            "timestamp",
            "version"
        ]
    );
    assert_eq!(record["version"], "1.0");
    let ts = record["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    assert_eq!(
        record["requestContext"],
        json!({
            "requestId": id,
            "functionArn": qualified_arn("broken", "$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 2,
        })
    );
    assert_eq!(record["requestPayload"], payload);
    assert_eq!(
        record["responseContext"],
        json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
    );
    assert_eq!(record["responsePayload"]["errorMessage"], "always broken");
    assert_eq!(record["responsePayload"]["errorType"], "ValueError");
    assert_eq!(calls(dir.path()).len(), 2, "one try and one retry");

    // The dead-letter queue gets the original event with Lambda's attributes.
    let url = format!("{}/000000000000/dead", server.endpoint);
    let m = receive_one(&sqs, &url, Duration::from_secs(30)).await;
    let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
    assert_eq!(body, payload);
    let attrs = m.message_attributes().unwrap();
    assert_eq!(attrs["RequestID"].data_type(), "String");
    assert_eq!(attrs["RequestID"].string_value(), Some(id.as_str()));
    assert_eq!(attrs["ErrorCode"].data_type(), "Number");
    assert_eq!(attrs["ErrorCode"].string_value(), Some("200"));
    assert_eq!(attrs["ErrorMessage"].string_value(), Some("always broken"));
}

#[tokio::test]
async fn a_timeout_is_a_function_error() {
    let server = fast_sandboxed_server();
    let client = failing_into(&server, "sleepy", "slow", 1, ("timeouts", 0, None)).await;
    let id = event(&client, "sleepy", &json!({"seconds": 5})).await;
    let (record, _) = next_record(&server, "timeouts").await;
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");
    let message = record["responsePayload"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("Task timed out after 1.00 seconds"),
        "{message}"
    );
}

#[tokio::test]
async fn a_crash_is_a_function_error_and_is_retried() {
    let server = fast_server();
    let client = failing_into(&server, "crasher", "crash", 3, ("crashes", 1, None)).await;
    let dir = tempfile::tempdir().unwrap();
    let id = event(&client, "crasher", &json!({"dir": dir.path()})).await;
    let (record, _) = next_record(&server, "crashes").await;
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");
    assert_eq!(record["responsePayload"]["errorType"], "Runtime.ExitError");
    assert_eq!(calls(dir.path()).len(), 2);
}

#[tokio::test]
async fn an_event_older_than_its_maximum_age_is_not_retried() {
    // A retry would come two minutes later, past the 60 s age limit: the event fails at once.
    let server = Server::start_with(&["--async-retry-delays", "120", "--isolation", "process"]);
    let client = failing_into(&server, "aged", "fail", 3, ("expired", 2, Some(60))).await;
    let dir = tempfile::tempdir().unwrap();
    let id = event(&client, "aged", &json!({"dir": dir.path()})).await;
    let (record, _) = next_record(&server, "expired").await;
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(record["requestContext"]["condition"], "EventAgeExceeded");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(record["responsePayload"]["errorMessage"], "always broken");
    assert_eq!(calls(dir.path()).len(), 1);
}

#[tokio::test]
async fn a_throttled_event_whose_back_off_outlives_its_age_expires() {
    // The first back-off (100 s) already ends past the 60 s age limit: a throttled event
    // fails with EventAgeExceeded without ever running.
    let server = Server::start_with(&["--async-backoff", "100,100", "--isolation", "process"]);
    let client = server.client();
    create_queue(&server.sqs(), "too-old").await;
    function(&client, "busy", "slow", 30).await;
    client
        .put_function_concurrency()
        .function_name("busy")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    client
        .put_function_event_invoke_config()
        .function_name("busy")
        .maximum_event_age_in_seconds(60)
        .destination_config(destinations(None, Some(&format!("{QUEUE_ARN}too-old"))))
        .send()
        .await
        .unwrap();
    // A sync invoke holds the function's only slot.
    let dir = tempfile::tempdir().unwrap();
    let holder = {
        let client = client.clone();
        let payload = json!({"dir": dir.path(), "seconds": 20});
        tokio::spawn(async move {
            client
                .invoke()
                .function_name("busy")
                .payload(Blob::new(payload.to_string()))
                .send()
                .await
        })
    };
    eventually(Duration::from_secs(30), "the slot to be taken", || async {
        (calls(dir.path()).len() == 1).then_some(())
    })
    .await;
    let id = event(&client, "busy", &json!({"seconds": 0})).await;
    let (record, _) = next_record(&server, "too-old").await;
    assert_eq!(
        record["requestContext"],
        json!({
            "requestId": id,
            "functionArn": qualified_arn("busy", "$LATEST"),
            "condition": "EventAgeExceeded",
            "approximateInvokeCount": 0,
        })
    );
    assert!(record.get("responsePayload").is_none());
    assert_eq!(calls(dir.path()).len(), 1, "the event never ran");
    holder.abort();
}

#[tokio::test]
async fn reserved_concurrency_zero_sends_events_straight_to_the_failure_path() {
    let server = fast_server();
    let client = server.client();
    let sqs = server.sqs();
    create_queue(&sqs, "throttled").await;
    create_queue(&sqs, "throttled-dlq").await;
    create_with(
        &client,
        "off",
        Runtime::Python312,
        "app.ok",
        python_zip(APP),
        |b| {
            b.dead_letter_config(
                DeadLetterConfig::builder()
                    .target_arn(format!("{QUEUE_ARN}throttled-dlq"))
                    .build(),
            )
        },
    )
    .await;
    client
        .put_function_concurrency()
        .function_name("off")
        .reserved_concurrent_executions(0)
        .send()
        .await
        .unwrap();
    client
        .put_function_event_invoke_config()
        .function_name("off")
        .destination_config(destinations(None, Some(&format!("{QUEUE_ARN}throttled"))))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let payload = json!({"dir": dir.path()});
    let id = event(&client, "off", &payload).await;
    let (record, _) = next_record(&server, "throttled").await;
    assert_eq!(
        record["requestContext"],
        json!({
            "requestId": id,
            "functionArn": qualified_arn("off", "$LATEST"),
            "condition": "ZeroReservedConcurrency",
            "approximateInvokeCount": 0,
        })
    );
    assert!(record.get("responseContext").is_none());
    assert!(record.get("responsePayload").is_none());
    let (body, attrs) = next_record(&server, "throttled-dlq").await;
    assert_eq!(body, payload);
    assert_eq!(
        attrs["ErrorCode"],
        ("Number".to_string(), "429".to_string())
    );
    assert_eq!(attrs["RequestID"].1, id);
    assert!(calls(dir.path()).is_empty(), "the function never ran");
}

#[tokio::test]
async fn throttled_events_wait_for_concurrency_and_all_run() {
    let server = fast_server();
    let client = server.client();
    create_queue(&server.sqs(), "done").await;
    function(&client, "narrow", "ok", 10).await;
    client
        .put_function_concurrency()
        .function_name("narrow")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    client
        .put_function_event_invoke_config()
        .function_name("narrow")
        .maximum_retry_attempts(0)
        .destination_config(destinations(Some(&format!("{QUEUE_ARN}done")), None))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            event(
                &client,
                "narrow",
                &json!({"dir": dir.path(), "i": i, "seconds": 0.3}),
            )
            .await,
        );
    }
    let mut seen = Vec::new();
    while seen.len() < ids.len() {
        let (record, _) = next_record(&server, "done").await;
        assert_eq!(record["requestContext"]["condition"], "Success");
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 1);
        seen.push(
            record["requestContext"]["requestId"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn a_lambda_destination_receives_the_record_as_an_event() {
    let server = fast_server();
    let client = server.client();
    function(&client, "source", "ok", 3).await;
    function(&client, "sink", "keep", 3).await;
    client
        .put_function_event_invoke_config()
        .function_name("source")
        .destination_config(destinations(Some(&function_arn("us-east-1", "sink")), None))
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let payload = json!({"dir": dir.path(), "x": 1});
    let id = event(&client, "source", &payload).await;
    let record: Value = eventually(Duration::from_secs(60), "the sink's record", || async {
        let entry = std::fs::read_dir(dir.path())
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("record-"))?;
        serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()
    })
    .await;
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(record["requestContext"]["condition"], "Success");
    assert_eq!(record["requestPayload"], payload);
    assert_eq!(record["responsePayload"], json!({"echo": payload}));
}

#[tokio::test]
async fn a_record_that_cannot_be_delivered_is_kept() {
    let server = fast_server();
    let client = server.client();
    function(&client, "lost", "fail", 3).await;
    client
        .put_function_event_invoke_config()
        .function_name("lost")
        .maximum_retry_attempts(0)
        .destination_config(destinations(None, Some(&format!("{QUEUE_ARN}nowhere"))))
        .send()
        .await
        .unwrap();
    let id = event(&client, "lost", &json!({})).await;
    let db = server.data_dir.path().join("lamina.db");
    let kept = eventually(Duration::from_secs(30), "the undelivered record", || {
        let rows = db_rows(
            &db,
            "SELECT destination, error FROM undelivered WHERE request_id=?",
            &[&id],
        );
        async move { (!rows.is_empty()).then_some(rows) }
    })
    .await;
    assert_eq!(
        kept,
        ["arn:aws:sqs:us-east-1:000000000000:nowhere|the queue arn:aws:sqs:us-east-1:000000000000:nowhere does not exist"]
    );
}

#[tokio::test]
async fn dead_letter_targets_must_be_sqs_queues() {
    let server = Server::start();
    let client = server.client();
    let err = error_details(
        client
            .create_function()
            .function_name("dlq-sns")
            .runtime(Runtime::Python312)
            .role(ROLE)
            .handler("app.ok")
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(Blob::new(python_zip(APP)))
                    .build(),
            )
            .dead_letter_config(
                DeadLetterConfig::builder()
                    .target_arn("arn:aws:sns:us-east-1:000000000000:topic")
                    .build(),
            )
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.status, err.code.as_str()),
        (400, "InvalidParameterValueException")
    );
    function(&client, "dlq-later", "ok", 3).await;
    let updated = client
        .update_function_configuration()
        .function_name("dlq-later")
        .dead_letter_config(
            DeadLetterConfig::builder()
                .target_arn(format!("{QUEUE_ARN}later"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated.dead_letter_config().and_then(|d| d.target_arn()),
        Some("arn:aws:sqs:us-east-1:000000000000:later")
    );
}
