//! Node.js functions through lamina's own runtime client: CommonJS and ES modules, async and
//! callback handlers, nested handler paths, the context object, and the documented errors.

mod common;

use aws_sdk_lambda::types::Runtime;
use common::*;
use serde_json::json;

/// `(name, contents, unix mode)`.
type ZipEntry = (&'static str, &'static [u8], u32);

#[tokio::test]
async fn commonjs_esm_async_and_callback_handlers() {
    let server = Server::start();
    let client = server.client();
    let cases: Vec<(&str, Runtime, &str, Vec<ZipEntry>)> = vec![
        (
            "cjs-async",
            Runtime::Nodejs20x,
            "index.handler",
            vec![(
                "index.js",
                b"exports.handler = async (event, context) => { console.log('cjs says hi'); return { kind: 'cjs', event, id: context.awsRequestId }; };\n",
                0o644,
            )],
        ),
        (
            "esm-mjs",
            Runtime::Nodejs22x,
            "app.handler",
            vec![(
                "app.mjs",
                b"export const handler = async (event) => ({ kind: 'esm', event });\n",
                0o644,
            )],
        ),
        (
            "esm-typed",
            Runtime::Nodejs18x,
            "src/lib/main.run",
            vec![
                ("package.json", b"{\"type\": \"module\"}", 0o644),
                (
                    "src/lib/main.js",
                    b"export async function run(event) { return { kind: 'esm-js', event }; }\n",
                    0o644,
                ),
            ],
        ),
        (
            "callback",
            Runtime::Nodejs24x,
            "index.handler",
            vec![(
                "index.js",
                b"exports.handler = function (event, context, callback) { setTimeout(() => callback(null, { kind: 'callback', event }), 10); };\n",
                0o644,
            )],
        ),
    ];
    for (name, runtime, handler, files) in cases {
        create(&client, name, runtime, handler, zip(&files)).await;
        let (body, err, log) = call(&client, name, json!({"n": name})).await;
        assert!(err.is_none(), "{name}: {body}");
        assert_eq!(body["event"], json!({"n": name}), "{name}: {body}");
        if name == "cjs-async" {
            assert_eq!(body["kind"], "cjs");
            assert!(body["id"].is_string());
            assert!(log.contains("cjs says hi"), "{log}");
        }
        // Warm again.
        let (again, err, _) = call(&client, name, json!(1)).await;
        assert!(err.is_none(), "{name}: {again}");
        assert_eq!(again["event"], 1);
    }
}

#[tokio::test]
async fn node_context_and_errors() {
    let server = Server::start();
    let client = server.client();
    let source = br#"
class ValidationFailed extends Error { constructor(m) { super(m); this.name = 'ValidationFailed'; } }
exports.handler = async (event, context) => {
  if (event.fail === 'builtin') throw new Error('plain failure');
  if (event.fail === 'custom') throw new ValidationFailed('bad input');
  return {
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    logGroupName: context.logGroupName,
    remaining: context.getRemainingTimeInMillis(),
    region: process.env.AWS_REGION,
    executionEnv: process.env.AWS_EXECUTION_ENV,
  };
};
"#;
    create_with(
        &client,
        "nodectx",
        Runtime::Nodejs20x,
        "index.handler",
        zip(&[("index.js", source, 0o644)]),
        |b| b.memory_size(512).timeout(9),
    )
    .await;
    let (body, err, _) = call(&client, "nodectx", json!({})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body["functionName"], "nodectx");
    assert_eq!(body["functionVersion"], "$LATEST");
    assert_eq!(
        body["invokedFunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:nodectx"
    );
    assert_eq!(body["memoryLimitInMB"], "512");
    assert_eq!(body["logGroupName"], "/aws/lambda/nodectx");
    assert_eq!(body["region"], "us-east-1");
    assert_eq!(body["executionEnv"], "AWS_Lambda_nodejs20.x");
    let remaining = body["remaining"].as_i64().unwrap();
    assert!(remaining > 7_000 && remaining <= 9_000, "{remaining}");

    let (body, err, _) = call(&client, "nodectx", json!({"fail": "builtin"})).await;
    assert_eq!(err.as_deref(), Some("Unhandled"));
    assert_eq!(body["errorType"], "Error");
    assert_eq!(body["errorMessage"], "plain failure");
    assert!(body["trace"].is_array(), "{body}");
    let (body, _, _) = call(&client, "nodectx", json!({"fail": "custom"})).await;
    assert_eq!(body["errorType"], "ValidationFailed");
    assert_eq!(body["errorMessage"], "bad input");
}

#[tokio::test]
async fn node_init_errors() {
    let server = Server::start();
    let client = server.client();
    let file: &[(&str, &[u8], u32)] = &[("index.js", b"exports.handler = async () => 1;\n", 0o644)];
    let broken: &[(&str, &[u8], u32)] =
        &[("index.js", b"exports.handler = async () => {;\n", 0o644)];
    for (name, handler, files, error_type) in [
        (
            "no-file",
            "missing.handler",
            file,
            "Runtime.ImportModuleError",
        ),
        ("no-export", "index.nope", file, "Runtime.HandlerNotFound"),
        ("bad-name", "index", file, "Runtime.MalformedHandlerName"),
        (
            "syntax",
            "index.handler",
            broken,
            "Runtime.UserCodeSyntaxError",
        ),
    ] {
        create(&client, name, Runtime::Nodejs20x, handler, zip(files)).await;
        let (body, err, _) = call(&client, name, json!({})).await;
        assert_eq!(err.as_deref(), Some("Unhandled"), "{name}");
        assert_eq!(body["errorType"], error_type, "{name}: {body}");
        assert!(body["errorMessage"].is_string(), "{name}: {body}");
    }
}

/// The event loop as AWS documents it: a callback's result is sent once the loop is empty,
/// unless `callbackWaitsForEmptyEventLoop` is false; then what is still pending waits, frozen
/// with the environment, and runs during the next invoke. A handler that neither returns nor
/// calls back answers `null` once the loop is empty.
#[tokio::test]
async fn node_event_loop_and_frozen_callbacks() {
    let server = Server::start();
    let client = server.client();
    let source = br#"
let invokes = 0;
exports.handler = function (event, context, callback) {
  invokes += 1;
  const invoke = invokes;
  if (event.mode === 'wait') {
    setTimeout(() => console.log(`timer of invoke ${invoke}`), 100);
    callback(null, { mode: 'wait' });
  } else if (event.mode === 'nowait') {
    context.callbackWaitsForEmptyEventLoop = false;
    setTimeout(() => console.log(`late timer of invoke ${invoke}`), 300);
    callback(null, { mode: 'nowait' });
  } else if (event.mode === 'silent') {
    setTimeout(() => console.log(`silent timer of invoke ${invoke}`), 400);
  } else {
    return Promise.resolve({ invokes });
  }
};
"#;
    create(
        &client,
        "nodeloop",
        Runtime::Nodejs20x,
        "index.handler",
        zip(&[("index.js", source, 0o644)]),
    )
    .await;
    let (body, err, log) = call(&client, "nodeloop", json!({"mode": "wait"})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body, json!({"mode": "wait"}));
    assert!(
        log.contains("timer of invoke 1"),
        "the response waited: {log}"
    );

    let (body, err, log) = call(&client, "nodeloop", json!({"mode": "nowait"})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body, json!({"mode": "nowait"}));
    assert!(
        !log.contains("late timer"),
        "the response did not wait: {log}"
    );

    // The frozen timer (due 300 ms after invoke 2) is overdue before this invoke's own timer
    // (400 ms) has run, so it fires within this invoke.
    let (body, err, log) = call(&client, "nodeloop", json!({"mode": "silent"})).await;
    assert!(err.is_none(), "{body}");
    assert_eq!(body, json!(null));
    assert!(log.contains("silent timer of invoke 3"), "{log}");
    assert!(
        log.contains("late timer of invoke 2"),
        "it ran after the thaw: {log}"
    );

    let (body, _, _) = call(&client, "nodeloop", json!({"mode": "count"})).await;
    assert_eq!(
        body,
        json!({"invokes": 4}),
        "one environment served them all"
    );
}
