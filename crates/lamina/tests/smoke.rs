//! The shortest path through lamina: create a Python function from a zip and invoke it.

mod common;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{LogType, Runtime};
use base64::Engine;
use common::*;

#[tokio::test]
async fn create_and_invoke_a_python_function() {
    let server = Server::start();
    let client = server.client();
    let out = create(
        &client,
        "hello",
        Runtime::Python312,
        "app.handler",
        python_zip(
            "def handler(event, context):\n    print('hi from', context.function_name)\n    return {'echo': event, 'request_id': context.aws_request_id}\n",
        ),
    )
    .await;
    assert_eq!(out.state().map(|s| s.as_str()), Some("Pending"));
    let resp = client
        .invoke()
        .function_name("hello")
        .payload(Blob::new(r#"{"x": 1}"#))
        .log_type(LogType::Tail)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status_code(), 200);
    assert_eq!(resp.executed_version(), Some("$LATEST"));
    assert!(resp.function_error().is_none());
    let body: serde_json::Value = serde_json::from_slice(resp.payload().unwrap().as_ref()).unwrap();
    assert_eq!(body["echo"], serde_json::json!({"x": 1}));
    let log = base64::engine::general_purpose::STANDARD
        .decode(resp.log_result().unwrap())
        .unwrap();
    let log = String::from_utf8(log).unwrap();
    let rid = body["request_id"].as_str().unwrap();
    assert!(
        log.contains(&format!("START RequestId: {rid} Version: $LATEST")),
        "{log}"
    );
    assert!(log.contains("hi from hello"), "{log}");
    assert!(log.contains(&format!("END RequestId: {rid}")), "{log}");
    assert!(
        log.contains(&format!("REPORT RequestId: {rid}\tDuration: ")),
        "{log}"
    );
    assert!(
        log.contains("Init Duration: "),
        "a cold start reports its init: {log}"
    );
}

#[tokio::test]
async fn a_relative_data_directory_works() {
    // Regression: code paths handed to functions were relative to the server's directory.
    let server = Server::start_relative();
    let client = server.client();
    create(
        &client,
        "relative",
        Runtime::Python312,
        "app.handler",
        python_zip("def handler(event, context):\n    return 'ok'\n"),
    )
    .await;
    let (body, err, _) = call(&client, "relative", serde_json::json!({})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body, "ok");
}

#[tokio::test]
async fn an_unknown_route_is_an_aws_shaped_404() {
    let server = Server::start();
    let url = format!("{}/2015-03-31/nothing-here", server.endpoint);
    let resp = tokio::task::spawn_blocking(move || http_get(&url))
        .await
        .unwrap();
    assert_eq!(resp.status, 404);
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("x-amzn-ErrorType").as_deref(),
        Some("UnknownOperationException")
    );
    assert!(header("x-amzn-RequestId").is_some_and(|id| id.len() == 36));
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(
        body["Message"],
        "lamina does not serve GET /2015-03-31/nothing-here"
    );
}

#[tokio::test]
async fn a_clean_stop_leaves_no_function_process_behind() {
    let mut server = Server::start_with(PROCESS_LEVEL);
    let client = server.client();
    create(
        &client,
        "stopped",
        Runtime::Python312,
        "app.handler",
        python_zip("import os\ndef handler(event, context):\n    return os.getpid()\n"),
    )
    .await;
    let (pid, _, _) = call(&client, "stopped", serde_json::json!({})).await;
    let pid = pid.as_u64().unwrap();
    server.stop();
    // Killed and reaped: not even a zombie is left.
    eventually(
        std::time::Duration::from_secs(10),
        "the environment's process to be gone",
        || async { (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(()) },
    )
    .await;
}
