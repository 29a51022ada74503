//! Concurrency end to end: reserved concurrency (Put/Get/DeleteFunctionConcurrency, the 100
//! unreserved minimum, GetAccountSettings), throttling with AWS's `Reason` and `Retry-After`,
//! the account limit (`--concurrency-limit`), and N concurrent invokes in N environments. A real
//! `lamina serve` driven by the real `aws-sdk-lambda`; where AWS's recorded behaviour is known
//! (LocalStack's AWS-validated snapshots), the assertion follows it and says so.
//!
//! Invocations that must overlap do not sleep for a guessed time: they wait on a gate (the
//! probe's `gate` action) that the test opens once it has seen them all running.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, Runtime, ThrottleReason};
use aws_sdk_lambda::Client;
use common::*;
use serde_json::{json, Value};

const MIN_UNRESERVED: &str = "Specified ReservedConcurrentExecutions for function decreases \
     account's UnreservedConcurrentExecution below its minimum value of [100].";

async fn probe(client: &Client, name: &str) {
    create_with(
        client,
        name,
        Runtime::Python312,
        "app.handler",
        probe_zip("c"),
        |b| b.timeout(60),
    )
    .await;
}

async fn reserve(client: &Client, name: &str, n: i32) {
    let out = client
        .put_function_concurrency()
        .function_name(name)
        .reserved_concurrent_executions(n)
        .send()
        .await
        .unwrap_or_else(|e| panic!("reserve {n} for {name}: {e:?}"));
    assert_eq!(out.reserved_concurrent_executions(), Some(n));
}

async fn reserved(client: &Client, name: &str) -> Option<i32> {
    client
        .get_function_concurrency()
        .function_name(name)
        .send()
        .await
        .expect("get function concurrency")
        .reserved_concurrent_executions()
}

/// `(ConcurrentExecutions, UnreservedConcurrentExecutions)` of GetAccountSettings.
async fn account(client: &Client) -> (i32, Option<i32>) {
    let s = client.get_account_settings().send().await.unwrap();
    let l = s.account_limit().expect("AccountLimit");
    (
        l.concurrent_executions(),
        l.unreserved_concurrent_executions(),
    )
}

async fn try_invoke(
    client: &Client,
    name: &str,
    event: Value,
) -> Result<aws_sdk_lambda::operation::invoke::InvokeOutput, SdkError<InvokeError>> {
    client
        .invoke()
        .function_name(name)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
}

/// A throttled invoke: 429 TooManyRequestsException, AWS's message, the `Reason` in the body and
/// in the SDK's modelled error, and a `Retry-After` header.
fn assert_throttled(err: SdkError<InvokeError>, reason: &str) {
    if let SdkError::ServiceError(se) = &err {
        match se.err() {
            InvokeError::TooManyRequestsException(t) => {
                assert_eq!(
                    t.reason(),
                    Some(&ThrottleReason::from(reason)),
                    "the SDK's modelled Reason"
                );
                assert!(
                    t.retry_after_seconds().is_some(),
                    "the SDK's retryAfterSeconds (Retry-After)"
                );
            }
            other => panic!("expected TooManyRequestsException, got {other:?}"),
        }
    }
    let d = error_details(err);
    assert_eq!(
        (d.status, d.code.as_str()),
        (429, "TooManyRequestsException"),
        "{d:?}"
    );
    assert_eq!(d.message, "Rate Exceeded.", "AWS's message (recorded)");
    assert_eq!(d.reason.as_deref(), Some(reason), "body Reason: {}", d.body);
    let retry = d.retry_after.expect("a Retry-After header");
    assert!(
        retry.parse::<u64>().is_ok(),
        "Retry-After is a number of seconds: {retry:?}"
    );
}

/// Start a `gate` invoke of `name` in its own task; it runs until `dir/release` exists.
fn start_gated(
    client: &Client,
    name: &str,
    dir: &Path,
    tag: &str,
) -> tokio::task::JoinHandle<
    Result<aws_sdk_lambda::operation::invoke::InvokeOutput, SdkError<InvokeError>>,
> {
    let client = client.clone();
    let name = name.to_string();
    let event = json!({"action": "gate", "dir": dir, "tag": tag, "max": 50});
    tokio::spawn(async move { try_invoke(&client, &name, event).await })
}

async fn wait_started(dir: &Path, tag: &str) {
    let marker: PathBuf = dir.join(format!("{tag}.started"));
    eventually(
        Duration::from_secs(30),
        &format!("invoke {tag} to be running"),
        || {
            let marker = marker.clone();
            async move { marker.exists().then_some(()) }
        },
    )
    .await;
}

fn open_gate(dir: &Path) {
    std::fs::write(dir.join("release"), b"go").expect("open the gate");
}

async fn gated_ok(
    handle: tokio::task::JoinHandle<
        Result<aws_sdk_lambda::operation::invoke::InvokeOutput, SdkError<InvokeError>>,
    >,
) -> Value {
    let out = handle.await.unwrap().expect("the gated invoke succeeds");
    assert_eq!(out.status_code(), 200);
    assert!(out.function_error().is_none(), "{:?}", out.payload());
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["released"], true, "it ran until the gate opened");
    body
}

#[tokio::test]
async fn reserved_concurrency_is_put_read_and_deleted() {
    let server = Server::start();
    let client = server.client();
    probe(&client, "rc").await;
    probe(&client, "rc2").await;

    assert_eq!(
        reserved(&client, "rc").await,
        None,
        "unset: an empty object"
    );
    let f = client
        .get_function()
        .function_name("rc")
        .send()
        .await
        .unwrap();
    assert!(
        f.concurrency().is_none(),
        "GetFunction has no Concurrency when unset: {:?}",
        f.concurrency()
    );
    assert_eq!(account(&client).await, (1000, Some(1000)));

    let spy = StatusSpy::default();
    let out = client
        .put_function_concurrency()
        .function_name("rc")
        .reserved_concurrent_executions(10)
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("put concurrency");
    assert_eq!(spy.status(), 200);
    assert_eq!(out.reserved_concurrent_executions(), Some(10));
    assert_eq!(reserved(&client, "rc").await, Some(10));
    let f = client
        .get_function()
        .function_name("rc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        f.concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        Some(10)
    );
    assert_eq!(account(&client).await, (1000, Some(990)));

    reserve(&client, "rc2", 5).await;
    assert_eq!(account(&client).await, (1000, Some(985)));
    reserve(&client, "rc", 0).await;
    assert_eq!(
        reserved(&client, "rc").await,
        Some(0),
        "0 is a reservation too"
    );
    assert_eq!(account(&client).await, (1000, Some(995)));
    reserve(&client, "rc", 20).await;
    assert_eq!(
        account(&client).await,
        (1000, Some(975)),
        "a new reservation replaces the old one"
    );

    let spy = StatusSpy::default();
    client
        .delete_function_concurrency()
        .function_name("rc")
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("delete concurrency");
    assert_eq!(spy.status(), 204, "DeleteFunctionConcurrency answers 204");
    assert_eq!(reserved(&client, "rc").await, None);
    let f = client
        .get_function()
        .function_name("rc")
        .send()
        .await
        .unwrap();
    assert!(f.concurrency().is_none());
    assert_eq!(account(&client).await, (1000, Some(995)));

    // Deleting the function releases its reservation.
    client
        .delete_function()
        .function_name("rc2")
        .send()
        .await
        .unwrap();
    assert_eq!(account(&client).await, (1000, Some(1000)));

    // Errors.
    let ghost = function_arn("us-east-1", "ghost");
    let err = client
        .put_function_concurrency()
        .function_name("ghost")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(
        message.starts_with(&format!("Function not found: {ghost}")),
        "{message}"
    );
    let err = client
        .get_function_concurrency()
        .function_name("ghost")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(message, format!("Function not found: {ghost}"));
    let err = client
        .delete_function_concurrency()
        .function_name("ghost")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(
        message.starts_with(&format!("Function not found: {ghost}")),
        "{message}"
    );

    // AWS (recorded, put_function_concurrency_with_qualified_arn).
    let err = client
        .put_function_concurrency()
        .function_name("rc:1")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert_eq!(
        message,
        "This operation is permitted on Lambda functions only. Aliases and versions do not \
         support this operation. Please specify either a function name or an unqualified \
         function ARN."
    );

    let err = client
        .put_function_concurrency()
        .function_name("rc")
        .reserved_concurrent_executions(-1)
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    assert!(
        message.contains(
            "Value '-1' at 'reservedConcurrentExecutions' failed to satisfy constraint: Member \
             must have value greater than or equal to 0"
        ),
        "{message}"
    );
    assert_eq!(
        reserved(&client, "rc").await,
        None,
        "refused puts change nothing"
    );
}

#[tokio::test]
async fn at_least_100_stay_unreserved() {
    let server = Server::start();
    let client = server.client();
    probe(&client, "big").await;
    probe(&client, "small").await;

    let err = client
        .put_function_concurrency()
        .function_name("big")
        .reserved_concurrent_executions(901)
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert_eq!(message, MIN_UNRESERVED, "AWS's message (recorded)");
    assert_eq!(reserved(&client, "big").await, None);
    assert_eq!(account(&client).await, (1000, Some(1000)));

    reserve(&client, "big", 900).await;
    assert_eq!(account(&client).await, (1000, Some(100)));
    let err = client
        .put_function_concurrency()
        .function_name("small")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert_eq!(message, MIN_UNRESERVED);
    assert_eq!(reserved(&client, "small").await, None);

    // Reserving 0 leaves the unreserved pool as it is; re-putting a function's own reservation
    // does not count it twice.
    reserve(&client, "small", 0).await;
    reserve(&client, "big", 900).await;
    reserve(&client, "big", 850).await;
    reserve(&client, "small", 50).await;
    assert_eq!(account(&client).await, (1000, Some(100)));
    let err = client
        .put_function_concurrency()
        .function_name("big")
        .reserved_concurrent_executions(851)
        .send()
        .await
        .unwrap_err();
    let (status, code, _) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert_eq!(reserved(&client, "big").await, Some(850));
}

#[tokio::test]
async fn reserved_concurrency_zero_throttles_every_invoke() {
    let server = Server::start();
    let client = server.client();
    probe(&client, "off").await;
    let v1 = client
        .publish_version()
        .function_name("off")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.version(), Some("1"));
    invoke_version(&client, "off", None, json!({})).await;

    reserve(&client, "off", 0).await;
    for name in ["off", "off:1", "off:$LATEST", "off", "off"] {
        let err = try_invoke(&client, name, json!({})).await.unwrap_err();
        assert_throttled(err, "ReservedFunctionConcurrentInvocationLimitExceeded");
    }
    let dry = client
        .invoke()
        .function_name("off")
        .invocation_type(InvocationType::DryRun)
        .send()
        .await
        .expect("DryRun is not throttled");
    assert_eq!(dry.status_code(), 204);

    client
        .delete_function_concurrency()
        .function_name("off")
        .send()
        .await
        .unwrap();
    let (executed, _) = invoke_version(&client, "off", None, json!({})).await;
    assert_eq!(
        executed, "$LATEST",
        "invokes run again once the reservation is gone"
    );
}

#[tokio::test]
async fn reserved_concurrency_one_runs_one_invoke_at_a_time() {
    let server = Server::start_with(PROCESS_LEVEL);
    let client = server.client();
    probe(&client, "single").await;
    reserve(&client, "single", 1).await;
    let gate = tempfile::tempdir().unwrap();

    let first = start_gated(&client, "single", gate.path(), "first");
    wait_started(gate.path(), "first").await;
    for _ in 0..3 {
        let err = try_invoke(&client, "single", json!({})).await.unwrap_err();
        assert_throttled(err, "ReservedFunctionConcurrentInvocationLimitExceeded");
    }
    // Another function is not limited by this one's reservation.
    probe(&client, "other").await;
    invoke_version(&client, "other", None, json!({})).await;

    open_gate(gate.path());
    let body = gated_ok(first).await;
    // Once the running invoke has answered, its slot is free.
    let (_, again) = invoke_version(&client, "single", None, json!({})).await;
    assert_eq!(again["pid"], body["pid"], "the one environment is reused");
    invoke_version(&client, "single", None, json!({})).await;
}

#[tokio::test]
async fn the_account_limit_throttles_unreserved_functions() {
    let server = Server::start_with(&["--concurrency-limit", "2", "--isolation", "process"]);
    let client = server.client();
    assert_eq!(account(&client).await, (2, Some(2)));
    probe(&client, "busy").await;
    let gate = tempfile::tempdir().unwrap();

    let a = start_gated(&client, "busy", gate.path(), "a");
    let b = start_gated(&client, "busy", gate.path(), "b");
    wait_started(gate.path(), "a").await;
    wait_started(gate.path(), "b").await;
    let err = try_invoke(&client, "busy", json!({})).await.unwrap_err();
    assert_throttled(err, "ConcurrentInvocationLimitExceeded");
    // The limit is the account's: another function is throttled too.
    probe(&client, "bystander").await;
    let err = try_invoke(&client, "bystander", json!({}))
        .await
        .unwrap_err();
    assert_throttled(err, "ConcurrentInvocationLimitExceeded");

    open_gate(gate.path());
    let (ra, rb) = (gated_ok(a).await, gated_ok(b).await);
    assert_ne!(ra["pid"], rb["pid"], "two environments ran at once");
    invoke_version(&client, "busy", None, json!({})).await;
    invoke_version(&client, "bystander", None, json!({})).await;
}

#[tokio::test]
async fn concurrent_invokes_run_in_as_many_environments_at_once() {
    const N: usize = 8;
    let server = Server::start_with(PROCESS_LEVEL);
    let client = server.client();
    probe(&client, "fanout").await;

    let started = Instant::now();
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                invoke_version(
                    &client,
                    "fanout",
                    None,
                    json!({"action": "sleep", "seconds": 1}),
                )
                .await
                .1
            })
        })
        .collect();
    let mut bodies = Vec::new();
    for h in handles {
        bodies.push(h.await.unwrap());
    }
    let elapsed = started.elapsed();
    let mut pids: Vec<u64> = bodies.iter().map(|b| b["pid"].as_u64().unwrap()).collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), N, "{N} environments, one invocation each");
    // One after another they would take at least N seconds.
    assert!(
        elapsed < Duration::from_secs(5),
        "{N} invokes of 1 s took {elapsed:?}; they did not run at once"
    );

    // Afterwards the environments are reused, not started again.
    for _ in 0..N {
        let (_, body) = invoke_version(&client, "fanout", None, json!({})).await;
        let pid = body["pid"].as_u64().unwrap();
        assert!(pids.contains(&pid), "pid {pid} is not one of {pids:?}");
    }
}

/// A `lamina serve` started here with an environment variable (the shared `Server` passes
/// arguments only); killed on drop.
struct EnvServer {
    child: std::process::Child,
    _data: tempfile::TempDir,
}

impl Drop for EnvServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_account_limit_can_come_from_the_environment() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("LAMINA_CONCURRENCY_LIMIT", "7")
        .env("LAMINA_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start lamina");
    let stdout = child.stdout.take().unwrap();
    let server = EnvServer { child, _data: data };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("lamina reports its address");
    let endpoint = line
        .strip_prefix("lamina listening on ")
        .expect("address line");
    let client = client_for(endpoint, "us-east-1");
    assert_eq!(
        account(&client).await,
        (7, Some(7)),
        "LAMINA_CONCURRENCY_LIMIT sets ConcurrentExecutions"
    );
    drop(server);
}
