//! Nothing accepted is lost: SIGKILL the server while thousands of `Event` invokes are queued,
//! running and waiting for a retry, restart it, and check that every accepted event ran to
//! success or was dead-lettered (duplicates are allowed, losses are not). Also: a delayed retry
//! survives a crash.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    DeadLetterConfig, DestinationConfig, InvocationType, OnFailure, Runtime,
};
use common::*;
use serde_json::{json, Value};

const APP: &str = r#"
import os, time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    with open(os.path.join(event["dir"], "ran"), "a") as f:
        f.write(context.aws_request_id + "\n")
    if event.get("fail"):
        raise RuntimeError("failing on purpose")
    with open(os.path.join(event["dir"], "ok"), "a") as f:
        f.write(context.aws_request_id + "\n")
    return {}
"#;

/// How many events the crash test sends.
const EVENTS: usize = 3000;
/// The server is killed once this many are accepted.
const KILL_AFTER: usize = 2000;
/// Every n-th event fails (and is retried once, then dead-lettered).
const FAIL_EVERY: usize = 10;

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Drain a queue: the `RequestID` attribute of every message, deleting them.
async fn drain_request_ids(sqs: &aws_sdk_sqs::Client, url: &str, into: &mut HashSet<String>) {
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive from the dead-letter queue");
        let messages = out.messages();
        if messages.is_empty() {
            return;
        }
        for m in messages {
            if let Some(id) = m
                .message_attributes()
                .and_then(|a| a.get("RequestID"))
                .and_then(|v| v.string_value())
            {
                into.insert(id.to_string());
            }
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_with_thousands_of_events_in_flight_loses_none() {
    // Plain processes: the function writes what ran to a host directory the test reads.
    let mut server = Server::start_with(&[
        "--async-retry-delays",
        "0.5",
        "--async-backoff",
        "0.05,1",
        "--isolation",
        "process",
    ]);
    let client = server.client();
    let sqs = server.sqs();
    create_queue(&sqs, "crash-dlq").await;
    create_queue(&sqs, "crash-failures").await;
    create_with(
        &client,
        "sink",
        Runtime::Python312,
        "app.handler",
        python_zip(APP),
        |b| {
            b.timeout(10).dead_letter_config(
                DeadLetterConfig::builder()
                    .target_arn("arn:aws:sqs:us-east-1:000000000000:crash-dlq")
                    .build(),
            )
        },
    )
    .await;
    // A few environments: most events wait for concurrency (throttled) when the server dies.
    client
        .put_function_concurrency()
        .function_name("sink")
        .reserved_concurrent_executions(2)
        .send()
        .await
        .unwrap();
    client
        .put_function_event_invoke_config()
        .function_name("sink")
        .maximum_retry_attempts(1)
        .destination_config(
            DestinationConfig::builder()
                .on_failure(
                    OnFailure::builder()
                        .destination("arn:aws:sqs:us-east-1:000000000000:crash-failures")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Senders keep sending until the server dies; only a 202 counts as accepted.
    let accepted: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            let accepted = accepted.clone();
            let next = next.clone();
            let dir = dir.path().to_path_buf();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= EVENTS {
                        return;
                    }
                    let fail = i.is_multiple_of(FAIL_EVERY);
                    let payload = json!({"dir": dir, "i": i, "fail": fail, "sleep": 0.03});
                    let Ok(resp) = client
                        .invoke()
                        .function_name("sink")
                        .invocation_type(InvocationType::Event)
                        .payload(Blob::new(payload.to_string()))
                        .send()
                        .await
                    else {
                        return;
                    };
                    assert_eq!(resp.status_code(), 202);
                    let id = resp.request_id().unwrap().to_string();
                    accepted.lock().unwrap().push((id, fail));
                }
            })
        })
        .collect();
    // Kill once most events are accepted and some have run: the rest are queued, running,
    // throttled or waiting for a retry.
    let ran_file = dir.path().join("ran");
    eventually(
        Duration::from_secs(120),
        "events accepted and running",
        || {
            let n = accepted.lock().unwrap().len();
            let ran = lines(&ran_file).len();
            async move { (n >= KILL_AFTER && ran >= 50).then_some(()) }
        },
    )
    .await;
    server.kill();
    for s in senders {
        s.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    let ran_before = lines(&ran_file).len();
    println!(
        "accepted {} events in {:?}; {} runs before SIGKILL",
        accepted.len(),
        started.elapsed(),
        ran_before
    );
    assert!(accepted.len() >= KILL_AFTER);
    let ok_before: HashSet<String> = lines(&dir.path().join("ok")).into_iter().collect();
    println!(
        "{} accepted events had not succeeded when the server was killed",
        accepted.len() - ok_before.len()
    );
    assert!(
        accepted.len() - ok_before.len() >= KILL_AFTER / 4,
        "the crash came while many events were still queued"
    );

    server.crash_and_restart();
    let sqs = server.sqs();
    let dlq = format!("{}/000000000000/crash-dlq", server.endpoint);
    let restarted = Instant::now();
    let mut dead: HashSet<String> = HashSet::new();
    let ok_file = dir.path().join("ok");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        drain_request_ids(&sqs, &dlq, &mut dead).await;
        let ok: HashSet<String> = lines(&ok_file).into_iter().collect();
        let missing: Vec<&(String, bool)> = accepted
            .iter()
            .filter(|(id, fail)| {
                if *fail {
                    !dead.contains(id)
                } else {
                    !ok.contains(id)
                }
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted events were lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let runs = lines(&ran_file).len();
    let ok_runs = lines(&ok_file).len();
    let ok_unique: HashSet<String> = lines(&ok_file).into_iter().collect();
    println!(
        "after the restart every accepted event was delivered or dead-lettered in {:?}: {} runs in all, {} successful runs of {} distinct events ({} duplicates), {} dead-lettered",
        restarted.elapsed(),
        runs,
        ok_runs,
        ok_unique.len(),
        ok_runs - ok_unique.len(),
        dead.len()
    );
}

#[tokio::test]
async fn a_delayed_retry_survives_a_crash() {
    let mut server = Server::start_with(&["--async-retry-delays", "3", "--isolation", "process"]);
    let client = server.client();
    create_queue(&server.sqs(), "late-failures").await;
    create_with(
        &client,
        "retried",
        Runtime::Python312,
        "app.handler",
        python_zip(APP),
        |b| b.timeout(10),
    )
    .await;
    client
        .put_function_event_invoke_config()
        .function_name("retried")
        .maximum_retry_attempts(1)
        .destination_config(
            DestinationConfig::builder()
                .on_failure(
                    OnFailure::builder()
                        .destination("arn:aws:sqs:us-east-1:000000000000:late-failures")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let resp = client
        .invoke()
        .function_name("retried")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(
            json!({"dir": dir.path(), "fail": true}).to_string(),
        ))
        .send()
        .await
        .unwrap();
    let id = resp.request_id().unwrap().to_string();
    let ran = dir.path().join("ran");
    eventually(Duration::from_secs(30), "the first attempt", || async {
        (lines(&ran).len() == 1).then_some(())
    })
    .await;
    // The first attempt failed and its retry, due 3 s later, is recorded; the crash comes first.
    let db = server.data_dir.path().join("lamina.db");
    eventually(
        Duration::from_secs(30),
        "the retry to be recorded",
        || async {
            let rows = db_rows(
                &db,
                "SELECT attempts FROM async_events WHERE request_id=?",
                &[&id],
            );
            (rows == ["1"]).then_some(())
        },
    )
    .await;
    server.crash_and_restart();
    let url = format!("{}/000000000000/late-failures", server.endpoint);
    let m = receive_one(&server.sqs(), &url, Duration::from_secs(60)).await;
    let record: Value = serde_json::from_str(m.body().unwrap()).unwrap();
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(lines(&ran), [id.clone(), id]);
}
