//! `provided.*` functions: the package's own `bootstrap` speaking the Runtime API. Real
//! runtime clients: a shell script with curl (the AWS tutorial's shape), a Rust binary built
//! with the `lambda_runtime` crate, the benchmark's minimal Rust client (`rust-min`), and the
//! official Python runtime interface client (`awslambdaric`) installed into the package. And a probe that checks the Runtime API's
//! own answers.

mod common;

use std::path::PathBuf;
use std::process::Command;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::Runtime;
use common::*;
use serde_json::{json, Value};

const SHELL_BOOTSTRAP: &str = r#"#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS="$(mktemp)"
  EVENT=$(curl -sS -LD "$HEADERS" "$API/invocation/next")
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  rm -f "$HEADERS"
  echo "handling $REQUEST_ID"
  curl -sS -X POST "$API/invocation/$REQUEST_ID/response" -d "{\"shell\": true, \"event\": $EVENT}" > /dev/null
done
"#;

#[tokio::test]
async fn a_shell_bootstrap_with_curl() {
    let server = Server::start();
    let client = server.client();
    create(
        &client,
        "shell",
        Runtime::Providedal2023,
        "function.handler",
        zip(&[("bootstrap", SHELL_BOOTSTRAP.as_bytes(), 0o755)]),
    )
    .await;
    for i in 0..3 {
        let (body, err, _) = call(&client, "shell", json!({"n": i})).await;
        assert!(err.is_none(), "{body}");
        assert_eq!(body, json!({"shell": true, "event": {"n": i}}));
    }
}

#[tokio::test]
async fn a_rust_bootstrap_built_with_lambda_runtime() {
    let server = Server::start();
    let client = server.client();
    let binary = std::fs::read(fixture_bin("rust-echo")).unwrap();
    create(
        &client,
        "rusty",
        Runtime::Providedal2023,
        "bootstrap",
        zip(&[("bootstrap", &binary, 0o755)]),
    )
    .await;
    let (body, err, _) = call(&client, "rusty", json!({"hello": "rust"})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["event"], json!({"hello": "rust"}));
    assert_eq!(body["function_name"], "rusty");
    assert_eq!(
        body["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:rusty"
    );
    let (body, err, _) = call(&client, "rusty", json!({"fail": "on purpose"})).await;
    assert_eq!(err.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorMessage"], "on purpose");
}

/// The benchmark's minimal runtime client (`rust-min`: one blocking connection, `httparse`)
/// answers `null`, one invoke after another on its one connection, and takes an event larger
/// than its starting buffer (64 KiB).
#[tokio::test]
async fn the_benchmarks_minimal_rust_client() {
    let server = Server::start();
    let client = server.client();
    let binary = std::fs::read(fixture_bin("rust-min")).unwrap();
    create(
        &client,
        "minimal",
        Runtime::Providedal2023,
        "bootstrap",
        zip(&[("bootstrap", &binary, 0o755)]),
    )
    .await;
    let big = "x".repeat(300 * 1024);
    for event in [json!({"n": 1}), json!({"big": big}), json!({"n": 3})] {
        let (body, err, _) = call(&client, "minimal", event).await;
        assert!(err.is_none(), "{body}");
        assert_eq!(body, Value::Null);
    }
}

/// The interpreter a `provided` bootstrap finds as `python3` on Lambda's `PATH`.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// `awslambdaric` installed (once per test run) into a directory, with its dependencies.
fn awslambdaric_dir(python: &PathBuf) -> PathBuf {
    let lamina = PathBuf::from(env!("CARGO_BIN_EXE_lamina"));
    let dir = lamina
        .parent()
        .unwrap()
        .join("test-cache")
        .join("awslambdaric");
    if !dir.join("awslambdaric").exists() {
        let tmp = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        // For the system's python3, which the sandboxed bootstrap runs: its version's wheels.
        let out = Command::new(SYSTEM_PYTHON)
            .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            .output()
            .expect("the system's python3 (scripts/install-deps installs it)");
        let version = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let status = Command::new(python)
            .args(["-m", "pip", "install", "--quiet", "--only-binary=:all:"])
            .args(["--python-version", &version, "--target"])
            .arg(&tmp)
            .arg("awslambdaric")
            .status()
            .expect("run pip");
        assert!(status.success(), "pip install awslambdaric");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).unwrap();
    }
    dir
}

#[tokio::test]
async fn the_official_python_runtime_interface_client() {
    let python = host_python();
    let ric = awslambdaric_dir(&python);
    let mut entries = dir_entries(&ric);
    entries.retain(|(name, _, _)| !name.contains("__pycache__"));
    entries.push((
        "app.py".into(),
        b"import os\ndef handler(event, context):\n    return {'ric': True, 'event': event, 'fn': context.function_name}\n"
            .to_vec(),
        0o644,
    ));
    entries.push((
        "bootstrap".into(),
        // The system's python3 (on PATH, as in a custom runtime image): a sandboxed
        // `provided` function sees the system directories, not the host's other interpreters.
        b"#!/bin/sh\ncd \"$LAMBDA_TASK_ROOT\"\nexec python3 -m awslambdaric app.handler\n".to_vec(),
        0o755,
    ));
    let server = Server::start();
    let client = server.client();
    create(
        &client,
        "ric",
        Runtime::Providedal2023,
        "app.handler",
        zip_owned(&entries),
    )
    .await;
    let (body, err, _) = call(&client, "ric", json!({"via": "awslambdaric"})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(
        body,
        json!({"ric": true, "event": {"via": "awslambdaric"}, "fn": "ric"})
    );
    // A second, warm invoke through the same client.
    let (body, _, _) = call(&client, "ric", json!(2)).await;
    assert_eq!(body["event"], 2);
}

/// A bootstrap that exercises the Runtime API and reports what it saw as its response.
const PROBE: &str = r#"#!/usr/bin/env python3
import http.client, json, os
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
conn = http.client.HTTPConnection(api)

def call(method, path, body=None, headers=None):
    conn.request(method, "/2018-06-01/runtime" + path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r.status, dict(r.getheaders()), data

seen = {}
while True:
    status, headers, event = call("GET", "/invocation/next")
    rid = headers["Lambda-Runtime-Aws-Request-Id"]
    report = {"next_status": status, "headers": headers, "event": json.loads(event), "previous": seen}
    report["init_error_after_init"] = call("POST", "/init/error", b"{}")[0]
    s, _, body = call("POST", "/invocation/not-a-request/response", b"{}")
    report["unknown_id"] = [s, json.loads(body)]
    s, _, _ = call("POST", "/invocation/%s/response" % rid, json.dumps(report).encode())
    seen = {"first_answer": s}
    s, _, body = call("POST", "/invocation/%s/response" % rid, b"{}")
    seen["second_answer"] = [s, json.loads(body)]
    s, _, body = call("POST", "/invocation/%s/error" % rid, b"{}")
    seen["error_after_answer"] = s
"#;

#[tokio::test]
async fn the_runtime_api_answers_as_documented() {
    let server = Server::start();
    let client = server.client();
    create_with(
        &client,
        "probe",
        Runtime::Providedal2,
        "probe",
        zip(&[("bootstrap", PROBE.as_bytes(), 0o755)]),
        |b| b.timeout(5),
    )
    .await;
    use base64::Engine;
    let cc = base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"a":"b"}}"#);
    let resp = client
        .invoke()
        .function_name("probe")
        .client_context(cc)
        .payload(Blob::new(r#"{"first": true}"#))
        .send()
        .await
        .unwrap();
    let first: Value = serde_json::from_slice(resp.payload().unwrap().as_ref()).unwrap();
    assert_eq!(first["next_status"], 200, "{first}");
    assert_eq!(first["event"], json!({"first": true}));
    let h = &first["headers"];
    use aws_sdk_lambda::operation::RequestId;
    assert_eq!(
        h["Lambda-Runtime-Aws-Request-Id"],
        resp.request_id().unwrap()
    );
    assert_eq!(
        h["Lambda-Runtime-Invoked-Function-Arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:probe"
    );
    let deadline: i64 = h["Lambda-Runtime-Deadline-Ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = chrono_now_ms();
    assert!(
        deadline > now && deadline <= now + 5_000,
        "deadline {deadline} vs now {now}"
    );
    assert!(h["Lambda-Runtime-Trace-Id"]
        .as_str()
        .unwrap()
        .starts_with("Root=1-"));
    assert_eq!(
        h["Lambda-Runtime-Client-Context"],
        r#"{"custom":{"a":"b"}}"#
    );
    assert_eq!(first["init_error_after_init"], 403);
    assert_eq!(first["unknown_id"][0], 400);
    assert_eq!(first["unknown_id"][1]["errorType"], "InvalidRequestID");
    // The second invocation reports what happened after the first answer.
    let (second, _, _) = call(&client, "probe", json!({"second": true})).await;
    let prev = &second["previous"];
    assert_eq!(prev["first_answer"], 202);
    assert_eq!(prev["second_answer"][0], 400, "one answer per request id");
    assert_eq!(prev["second_answer"][1]["errorType"], "InvalidRequestID");
    assert_eq!(prev["error_after_answer"], 400);
    assert!(second["headers"]
        .get("Lambda-Runtime-Client-Context")
        .is_none());
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn a_missing_interpreter_or_entrypoint_fails_the_invoke_not_the_server() {
    // The bootstrap names an interpreter that does not exist: the runtime cannot start.
    let server = Server::start();
    let client = server.client();
    create(
        &client,
        "broken",
        Runtime::Providedal2023,
        "x",
        zip(&[("bootstrap", b"#!/nonexistent/interpreter\n", 0o755)]),
    )
    .await;
    let (body, err, _) = call(&client, "broken", json!({})).await;
    assert_eq!(err.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Runtime.InvalidEntrypoint", "{body}");
}
