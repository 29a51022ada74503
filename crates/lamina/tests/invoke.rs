//! Invoke through the real client: sync, Event and DryRun; errors, timeouts, crashes, init
//! errors; payload limits; logs; environment reuse and isolation of configuration versions.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, Runtime};
use aws_sdk_lambda::Client;
use base64::Engine;
use common::*;
use serde_json::{json, Value};

/// One Python function that does what its event asks.
const TOOL: &str = r#"
import json, os, sys, time

def handler(event, context):
    action = event.get("action", "echo") if isinstance(event, dict) else "echo"
    if action == "echo":
        return {"event": event, "request_id": context.aws_request_id, "pid": os.getpid()}
    if action == "env":
        return dict(os.environ)
    if action == "sleep":
        time.sleep(event["seconds"])
        return {"pid": os.getpid()}
    if action == "fail":
        raise ValueError(event.get("message", "boom"))
    if action == "exit":
        print("exiting now", flush=True)
        os._exit(event.get("code", 1))
    if action == "print":
        for i in range(event["lines"]):
            print("line %05d %s" % (i, "x" * 90))
        return "printed"
    if action == "big":
        return "x" * event["bytes"]
    if action == "context":
        cc = context.client_context
        return {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": str(context.memory_limit_in_mb),
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
            "custom": cc.custom if cc else None,
            "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        }
    if action == "touch":
        # The marker is written last: it proves the invocation ran to its end.
        if event.get("sleep"):
            time.sleep(event["sleep"])
        with open(os.path.join(event["dir"], context.aws_request_id), "w") as f:
            f.write(json.dumps(event))
        return "touched"
    raise Exception("unknown action " + action)
"#;

async fn tool(client: &Client, name: &str) {
    create(
        client,
        name,
        Runtime::Python312,
        "app.handler",
        python_zip(TOOL),
    )
    .await;
}

#[tokio::test]
async fn warm_environments_are_reused_and_report_no_init() {
    let server = Server::start();
    let client = server.client();
    tool(&client, "warm").await;
    let (first, _, log1) = call(&client, "warm", json!({})).await;
    let (second, _, log2) = call(&client, "warm", json!({})).await;
    assert_eq!(
        first["pid"], second["pid"],
        "the second invoke reuses the environment"
    );
    assert!(log1.contains("Init Duration: "), "{log1}");
    assert!(!log2.contains("Init Duration"), "{log2}");
    for field in [
        "Duration: ",
        "Billed Duration: ",
        "Memory Size: 128 MB",
        "Max Memory Used: ",
    ] {
        assert!(log2.contains(field), "REPORT lacks {field}: {log2}");
    }
    assert_ne!(first["request_id"], second["request_id"]);
}

#[tokio::test]
async fn function_errors_are_data() {
    let server = Server::start();
    let client = server.client();
    tool(&client, "errs").await;
    let (body, err, _) = call(
        &client,
        "errs",
        json!({"action": "fail", "message": "no way"}),
    )
    .await;
    assert_eq!(err.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "ValueError");
    assert_eq!(body["errorMessage"], "no way");
    assert!(body["stackTrace"].is_array());
    // The environment survives a handled error.
    let (ok, err, _) = call(&client, "errs", json!({})).await;
    assert!(err.is_none());
    assert_eq!(ok["event"], json!({}));
}

#[tokio::test]
async fn timeouts_kill_the_environment() {
    let server = Server::start_with(PROCESS_LEVEL);
    let client = server.client();
    create_with(
        &client,
        "slow",
        Runtime::Python312,
        "app.handler",
        python_zip(TOOL),
        |b| b.timeout(1),
    )
    .await;
    let (before, _, _) = call(&client, "slow", json!({})).await;
    let pid = before["pid"].as_u64().unwrap() as u32;
    let started = Instant::now();
    let (body, err, log) = call(&client, "slow", json!({"action": "sleep", "seconds": 30})).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(err.as_deref(), Some("Unhandled"));
    let msg = body["errorMessage"].as_str().unwrap();
    assert!(msg.ends_with("Task timed out after 1.00 seconds"), "{msg}");
    assert!(log.contains("Task timed out after 1.00 seconds"), "{log}");
    eventually(
        Duration::from_secs(5),
        "the timed-out process to die",
        || async { (!alive(pid)).then_some(()) },
    )
    .await;
    let (after, err, _) = call(&client, "slow", json!({})).await;
    assert!(err.is_none());
    assert_ne!(
        after["pid"], before["pid"],
        "a new environment after the timeout"
    );
}

#[tokio::test]
async fn a_runtime_that_exits_gives_runtime_exit_error() {
    let server = Server::start();
    let client = server.client();
    tool(&client, "crash").await;
    let (body, err, log) = call(&client, "crash", json!({"action": "exit", "code": 3})).await;
    assert_eq!(err.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Runtime.ExitError");
    let msg = body["errorMessage"].as_str().unwrap();
    assert!(msg.starts_with("RequestId: "), "{msg}");
    assert!(
        msg.ends_with("Error: Runtime exited with error: exit status 3"),
        "{msg}"
    );
    assert!(
        log.contains("exiting now"),
        "output before the crash is in the log: {log}"
    );
    let (_, err, _) = call(&client, "crash", json!({})).await;
    assert!(err.is_none(), "the next invoke gets a fresh environment");
}

#[tokio::test]
async fn init_errors_are_reported() {
    let server = Server::start();
    let client = server.client();
    let cases = [
        (
            "missing-module",
            "nope.handler",
            "def handler(e, c): return 1\n",
            "Runtime.ImportModuleError",
        ),
        (
            "missing-handler",
            "app.nope",
            "def handler(e, c): return 1\n",
            "Runtime.HandlerNotFound",
        ),
        (
            "syntax",
            "app.handler",
            "def handler(e, c) return 1\n",
            "Runtime.UserCodeSyntaxError",
        ),
        // An exception raised while importing is reported with its own type, as awslambdaric does.
        (
            "raises",
            "app.handler",
            "raise RuntimeError('init failed')\n",
            "RuntimeError",
        ),
    ];
    for (name, handler, source, error_type) in cases {
        create(
            &client,
            name,
            Runtime::Python312,
            handler,
            python_zip(source),
        )
        .await;
        let (body, err, _) = call(&client, name, json!({})).await;
        assert_eq!(err.as_deref(), Some("Unhandled"), "{name}");
        assert_eq!(body["errorType"], error_type, "{name}: {body}");
        assert!(body["errorMessage"].is_string(), "{name}: {body}");
    }
}

#[tokio::test]
async fn logs_have_a_tail_and_a_stream() {
    let server = Server::start();
    let client = server.client();
    tool(&client, "chatty").await;
    // About 10 KB of output.
    let (_, err, tail) = call(&client, "chatty", json!({"action": "print", "lines": 100})).await;
    assert!(err.is_none());
    assert!(
        tail.len() <= 4096,
        "the tail is at most 4 KB, got {}",
        tail.len()
    );
    assert!(
        tail.contains("line 00099"),
        "the tail ends with the last lines: {tail}"
    );
    assert!(tail
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .starts_with("REPORT RequestId: "));
    assert!(!tail.contains("line 00000"), "the tail keeps only the end");
    let files = server.log_files("chatty");
    assert_eq!(files.len(), 1, "one environment, one stream: {files:?}");
    let rel = files[0]
        .strip_prefix(
            server
                .data_dir
                .path()
                .join("logs/000000000000/us-east-1/aws/lambda/chatty"),
        )
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // YYYY/MM/DD/[$LATEST]<32 hex>
    let parts: Vec<&str> = rel.split('/').collect();
    assert_eq!(parts.len(), 4, "{rel}");
    assert!(
        parts[3].starts_with("[$LATEST]") && parts[3].len() == 9 + 32,
        "{rel}"
    );
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("line 00000") && text.contains("line 00099"));
    let start = text.find("START RequestId").unwrap();
    let first_line = text.find("line 00000").unwrap();
    let end = text.rfind("END RequestId").unwrap();
    assert!(
        start < first_line && first_line < end,
        "output sits between START and END"
    );
    // Under steady load the file is written at most every 50 ms, but nothing stays buffered:
    // the lines of invokes in quick succession all reach it soon after.
    for _ in 0..5 {
        let (_, err, _) = call(&client, "chatty", json!({"action": "print", "lines": 1})).await;
        assert!(err.is_none());
    }
    let path = files[0].clone();
    eventually(
        Duration::from_secs(5),
        "six REPORT lines in the stream file",
        || {
            let path = path.clone();
            async move {
                let text = std::fs::read_to_string(&path).ok()?;
                (text.matches("REPORT RequestId: ").count() == 6).then_some(())
            }
        },
    )
    .await;
}

/// Python's root logger writes Lambda's text format (`[LEVEL]\t<time>\t<request id>\t<msg>`)
/// as awslambdaric sets it up, whether the function's code imports `logging` at module level
/// or only inside the handler (lamina's client installs the handler when `logging` is first
/// imported, not at start).
#[tokio::test]
async fn python_logging_has_lambdas_format() {
    let server = Server::start();
    let client = server.client();
    let at_import = r#"
import logging
logging.warning("imported")

def handler(event, context):
    logging.getLogger("app").error("handling %s", event["n"])
    logging.info("below WARNING: not shown")
    return "ok"
"#;
    let in_handler = r#"
def handler(event, context):
    import logging
    logging.warning("late %s", event["n"])
    return "ok"
"#;
    for (name, source, lines) in [
        ("log-import", at_import, &["[WARNING]", "[ERROR]"][..]),
        ("log-late", in_handler, &["[WARNING]"][..]),
    ] {
        create(
            &client,
            name,
            Runtime::Python312,
            "app.handler",
            python_zip(source),
        )
        .await;
        let resp = client
            .invoke()
            .function_name(name)
            .payload(Blob::new(json!({"n": 7}).to_string()))
            .log_type(aws_sdk_lambda::types::LogType::Tail)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.function_error(), None, "{name}");
        let tail = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(resp.log_result().unwrap())
                .unwrap(),
        )
        .unwrap();
        let request_id = tail
            .lines()
            .find_map(|l| l.strip_prefix("START RequestId: "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .to_string();
        for level in lines {
            let line = tail
                .lines()
                .find(|l| l.starts_with(level))
                .unwrap_or_else(|| panic!("{name}: no {level} line in {tail}"));
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "{name}: {line}");
            // 2026-11-23T01:02:03.456Z
            assert!(
                fields[1].len() == 24 && fields[1].ends_with('Z') && fields[1].contains('T'),
                "{name}: {line}"
            );
            if line.contains("imported") {
                assert_eq!(
                    fields[2], "",
                    "logged during init: no request id yet: {line}"
                );
            } else {
                assert_eq!(fields[2], request_id, "{name}: {line}");
                assert!(fields[3].ends_with(" 7"), "{name}: {line}");
            }
        }
        assert!(!tail.contains("below WARNING"), "{name}: {tail}");
    }
}

#[tokio::test]
async fn payload_limits_and_bad_payloads() {
    let server = Server::start();
    let client = server.client();
    tool(&client, "limits").await;
    // A 7 MB response.
    let (body, err, _) = call(
        &client,
        "limits",
        json!({"action": "big", "bytes": 7_000_000}),
    )
    .await;
    assert_eq!(err.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Function.ResponseSizeTooLarge");
    assert!(body["errorMessage"]
        .as_str()
        .unwrap()
        .contains("exceeded maximum allowed payload size (6291556 bytes)"));
    // A 7 MB request.
    let big = format!("\"{}\"", "x".repeat(7_000_000));
    let e = client
        .invoke()
        .function_name("limits")
        .payload(Blob::new(big))
        .send()
        .await
        .unwrap_err();
    let (status, code, msg) = service_error(e);
    assert_eq!(
        (status, code.as_str()),
        (413, "RequestEntityTooLargeException")
    );
    assert!(msg.contains("6291456 bytes"), "{msg}");
    // Not JSON.
    let e = client
        .invoke()
        .function_name("limits")
        .payload(Blob::new("{not json"))
        .send()
        .await
        .unwrap_err();
    let (status, code, msg) = service_error(e);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidRequestContentException")
    );
    assert!(
        msg.starts_with("Could not parse request body into json"),
        "{msg}"
    );
    // An Event over 1 MB.
    let e = client
        .invoke()
        .function_name("limits")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(format!("\"{}\"", "x".repeat(1_100_000))))
        .send()
        .await
        .unwrap_err();
    let (status, code, msg) = service_error(e);
    assert_eq!(
        (status, code.as_str()),
        (413, "RequestEntityTooLargeException")
    );
    assert!(
        msg.contains("too large for the Event invocation type"),
        "{msg}"
    );
    // No payload at all: the function gets {}.
    let resp = client
        .invoke()
        .function_name("limits")
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(resp.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["event"], json!({}));
}

#[tokio::test]
async fn event_invokes_are_accepted_then_run() {
    let server = Server::start_with(PROCESS_LEVEL);
    let client = server.client();
    tool(&client, "later").await;
    let dir = tempfile::tempdir().unwrap();
    let resp = client
        .invoke()
        .function_name("later")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(
            json!({"action": "touch", "dir": dir.path()}).to_string(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status_code(), 202);
    assert!(resp
        .payload()
        .map(|p| p.as_ref().is_empty())
        .unwrap_or(true));
    use aws_sdk_lambda::operation::RequestId;
    let request_id = resp.request_id().expect("x-amzn-RequestId").to_string();
    let marker = dir.path().join(&request_id);
    eventually(Duration::from_secs(20), "the event to run", || async {
        marker.exists().then_some(())
    })
    .await;
}

#[tokio::test]
async fn accepted_events_survive_a_crash() {
    let mut server = Server::start_with(PROCESS_LEVEL);
    let client = server.client();
    create_with(
        &client,
        "durable",
        Runtime::Python312,
        "app.handler",
        python_zip(TOOL),
        |b| b.timeout(30),
    )
    .await;
    // One at a time: when the server dies, at most one event is running (its orphaned process
    // may still finish it) and the others are only in the store. Their markers appear only if
    // the restarted server runs them.
    client
        .put_function_concurrency()
        .function_name("durable")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for i in 0..8 {
        let resp = client
            .invoke()
            .function_name("durable")
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(
                json!({"action": "touch", "dir": dir.path(), "n": i, "sleep": 0.5}).to_string(),
            ))
            .send()
            .await
            .unwrap();
        use aws_sdk_lambda::operation::RequestId;
        ids.push(resp.request_id().unwrap().to_string());
    }
    server.crash_and_restart();
    let ran_before = ids.iter().filter(|id| dir.path().join(id).exists()).count();
    assert!(
        ran_before < ids.len(),
        "the crash came before the queue drained"
    );
    for id in &ids {
        let marker = dir.path().join(id);
        eventually(
            Duration::from_secs(30),
            "every accepted event to run",
            || async { marker.exists().then_some(()) },
        )
        .await;
    }
}

#[tokio::test]
async fn dry_run_checks_without_running() {
    let server = Server::start();
    let client = server.client();
    tool(&client, "dry").await;
    let resp = client
        .invoke()
        .function_name("dry")
        .invocation_type(InvocationType::DryRun)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status_code(), 204);
    assert!(server.log_files("dry").is_empty(), "nothing ran");
    let e = client
        .invoke()
        .function_name("nope")
        .invocation_type(InvocationType::DryRun)
        .send()
        .await
        .unwrap_err();
    let (status, code, msg) = service_error(e);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(
        msg,
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"
    );
}

#[tokio::test]
async fn every_form_of_the_function_name() {
    let server = Server::start();
    let client = server.client();
    tool(&client, "named").await;
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:named";
    for (name, qualifier, invoked) in [
        ("named", None, arn.to_string()),
        ("named:$LATEST", None, format!("{arn}:$LATEST")),
        ("named", Some("$LATEST"), format!("{arn}:$LATEST")),
        ("000000000000:function:named", None, arn.to_string()),
        (arn, None, arn.to_string()),
        (
            &format!("{arn}:$LATEST") as &str,
            None,
            format!("{arn}:$LATEST"),
        ),
    ] {
        let resp = client
            .invoke()
            .function_name(name)
            .set_qualifier(qualifier.map(str::to_string))
            .payload(Blob::new(json!({"action": "context"}).to_string()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(resp.executed_version(), Some("$LATEST"));
        let body: Value = serde_json::from_slice(resp.payload().unwrap().as_ref()).unwrap();
        assert_eq!(body["invoked_function_arn"], invoked, "{name}");
    }
    let e = client
        .invoke()
        .function_name("named:$LATEST")
        .qualifier("1")
        .send()
        .await
        .unwrap_err();
    let (status, code, msg) = service_error(e);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert!(
        msg.contains("does not match the specified qualifier"),
        "{msg}"
    );
    let e = client
        .invoke()
        .function_name("named:7")
        .send()
        .await
        .unwrap_err();
    let (status, code, msg) = service_error(e);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(msg.ends_with("function:named:7"), "{msg}");
    let e = client
        .invoke()
        .function_name("arn:aws:lambda:eu-west-1:000000000000:function:named")
        .send()
        .await
        .unwrap_err();
    assert_eq!(service_error(e).1, "ResourceNotFoundException");
}

#[tokio::test]
async fn context_and_client_context_reach_the_function() {
    let server = Server::start();
    let client = server.client();
    create_with(
        &client,
        "ctx",
        Runtime::Python312,
        "app.handler",
        python_zip(TOOL),
        |b| b.memory_size(256).timeout(7),
    )
    .await;
    let cc = base64::engine::general_purpose::STANDARD
        .encode(json!({"custom": {"k": "v"}, "client": {}, "env": {}}).to_string());
    let resp = client
        .invoke()
        .function_name("ctx")
        .client_context(cc)
        .payload(Blob::new(json!({"action": "context"}).to_string()))
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(resp.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["function_name"], "ctx");
    assert_eq!(body["function_version"], "$LATEST");
    assert_eq!(body["memory_limit_in_mb"], "256");
    assert_eq!(body["log_group_name"], "/aws/lambda/ctx");
    assert!(body["log_stream_name"]
        .as_str()
        .unwrap()
        .contains("[$LATEST]"));
    let remaining = body["remaining"].as_i64().unwrap();
    assert!(remaining > 5_000 && remaining <= 7_000, "{remaining}");
    assert_eq!(body["custom"], json!({"k": "v"}));
    assert!(body["trace"].as_str().unwrap().starts_with("Root=1-"));
    let e = client
        .invoke()
        .function_name("ctx")
        .client_context("!!not base64!!")
        .send()
        .await
        .unwrap_err();
    let (status, code, msg) = service_error(e);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidRequestContentException")
    );
    assert_eq!(
        msg,
        "Client context must be a valid Base64-encoded JSON object."
    );
}

#[tokio::test]
async fn the_environment_holds_lambda_variables_and_nothing_of_the_server() {
    let server = Server::start();
    let client = server.client();
    create_with(
        &client,
        "envs",
        Runtime::Python312,
        "app.handler",
        python_zip(TOOL),
        |b| b.environment(env(&[("MY_SETTING", "42"), ("LANG", "C.UTF-8")])),
    )
    .await;
    let (vars, _, _) = call(&client, "envs", json!({"action": "env"})).await;
    let get = |k: &str| vars[k].as_str().map(str::to_string);
    assert_eq!(get("MY_SETTING").as_deref(), Some("42"));
    assert_eq!(
        get("LANG").as_deref(),
        Some("C.UTF-8"),
        "a function may override LANG"
    );
    assert_eq!(get("AWS_LAMBDA_FUNCTION_NAME").as_deref(), Some("envs"));
    assert_eq!(
        get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").as_deref(),
        Some("128")
    );
    assert_eq!(
        get("AWS_LAMBDA_FUNCTION_VERSION").as_deref(),
        Some("$LATEST")
    );
    assert_eq!(get("_HANDLER").as_deref(), Some("app.handler"));
    assert_eq!(get("AWS_REGION").as_deref(), Some("us-east-1"));
    assert_eq!(get("AWS_DEFAULT_REGION").as_deref(), Some("us-east-1"));
    assert_eq!(
        get("AWS_EXECUTION_ENV").as_deref(),
        Some("AWS_Lambda_python3.12")
    );
    assert_eq!(
        get("AWS_LAMBDA_LOG_GROUP_NAME").as_deref(),
        Some("/aws/lambda/envs")
    );
    assert_eq!(
        get("AWS_LAMBDA_INITIALIZATION_TYPE").as_deref(),
        Some("on-demand")
    );
    assert_eq!(get("TZ").as_deref(), Some(":UTC"));
    assert!(get("AWS_LAMBDA_LOG_STREAM_NAME")
        .unwrap()
        .contains("/[$LATEST]"));
    assert!(get("AWS_LAMBDA_RUNTIME_API")
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(get("LAMBDA_TASK_ROOT").is_some() && get("LAMBDA_RUNTIME_DIR").is_some());
    assert!(get("AWS_ACCESS_KEY_ID").is_some() && get("AWS_SECRET_ACCESS_KEY").is_some());
    assert_eq!(
        get("LAMINA_TEST_CANARY"),
        None,
        "the server's environment leaked"
    );
    assert_eq!(get("HOME"), None, "the server's environment leaked");
    assert_eq!(get("CARGO"), None, "the server's environment leaked");
}

#[tokio::test]
async fn concurrent_invokes_get_their_own_environments() {
    let server = Server::start_with(PROCESS_LEVEL);
    let client = server.client();
    tool(&client, "parallel").await;
    let started = Instant::now();
    let calls = (0..4).map(|_| {
        let client = client.clone();
        async move {
            call(
                &client,
                "parallel",
                json!({"action": "sleep", "seconds": 1}),
            )
            .await
        }
    });
    let results = futures_join_all(calls).await;
    let mut pids: Vec<u64> = results
        .iter()
        .map(|(b, _, _)| b["pid"].as_u64().unwrap())
        .collect();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 4, "four environments at once");
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "they ran in parallel: {:?}",
        started.elapsed()
    );
    // Afterwards they are reused.
    let (again, _, _) = call(&client, "parallel", json!({})).await;
    assert!(pids.contains(&again["pid"].as_u64().unwrap()));
}

async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn idle_environments_are_stopped() {
    let server = Server::start_with(&["--idle-timeout", "0.5", "--isolation", "process"]);
    let client = server.client();
    tool(&client, "idle").await;
    let (body, _, _) = call(&client, "idle", json!({})).await;
    let pid = body["pid"].as_u64().unwrap() as u32;
    eventually(
        Duration::from_secs(10),
        "the idle environment to stop",
        || async { (!alive(pid)).then_some(()) },
    )
    .await;
    let (again, err, _) = call(&client, "idle", json!({})).await;
    assert!(err.is_none());
    assert_ne!(again["pid"], body["pid"]);
}

#[tokio::test]
async fn a_new_configuration_never_reuses_an_old_environment() {
    let server = Server::start_with(PROCESS_LEVEL);
    let client = server.client();
    tool(&client, "versioned").await;
    let (before, _, _) = call(&client, "versioned", json!({"action": "env"})).await;
    let (first, _, _) = call(&client, "versioned", json!({})).await;
    assert_eq!(before["MY_SETTING"], Value::Null);
    client
        .update_function_configuration()
        .function_name("versioned")
        .environment(env(&[("MY_SETTING", "new")]))
        .send()
        .await
        .unwrap();
    wait_updated(&client, "versioned").await;
    let (after, _, _) = call(&client, "versioned", json!({"action": "env"})).await;
    assert_eq!(after["MY_SETTING"], "new");
    let (second, _, _) = call(&client, "versioned", json!({})).await;
    assert_ne!(first["pid"], second["pid"]);
    let old = first["pid"].as_u64().unwrap() as u32;
    eventually(
        Duration::from_secs(5),
        "the old environment to stop",
        || async { (!alive(old)).then_some(()) },
    )
    .await;
}
