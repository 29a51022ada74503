//! AWS's validation of the control plane, end to end: every refused request is checked for its
//! status, error code and message through the real `aws-sdk-lambda` client, and for leaving
//! nothing behind.

mod common;

use aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use aws_sdk_lambda::Client;
use common::*;

const HANDLER: &str = "def handler(event, context):\n    return event\n";

const NAME_PATTERN: &str = "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

const NOT_A_ZIP: &str =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";

/// A valid CreateFunction request for `name`; each case changes one thing.
fn valid(client: &Client, name: &str) -> CreateFunctionFluentBuilder {
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::Python312)
        .role(ROLE)
        .handler("app.handler")
        .code(code(python_zip(HANDLER)))
}

fn code(zip: Vec<u8>) -> FunctionCode {
    FunctionCode::builder().zip_file(Blob::new(zip)).build()
}

/// Send a request that must be refused; its (status, code, message).
async fn refused(b: CreateFunctionFluentBuilder) -> (u16, String, String) {
    service_error(b.send().await.expect_err("the request is refused"))
}

/// Assert the status and code, and that the message is `message`.
#[track_caller]
fn assert_exact(got: &(u16, String, String), status: u16, code: &str, message: &str) {
    assert_eq!((got.0, got.1.as_str()), (status, code), "{got:?}");
    assert_eq!(got.2, message);
}

/// Assert the status and code, and that the message starts with `prefix`.
#[track_caller]
fn assert_prefix(got: &(u16, String, String), status: u16, code: &str, prefix: &str) {
    assert_eq!((got.0, got.1.as_str()), (status, code), "{got:?}");
    assert!(got.2.starts_with(prefix), "message {:?}", got.2);
}

/// No function exists in the caller's region.
async fn assert_no_functions(client: &Client) {
    assert!(
        client
            .list_functions()
            .send()
            .await
            .unwrap()
            .functions()
            .is_empty(),
        "a refused create leaves no function behind"
    );
    let usage = client.get_account_settings().send().await.unwrap();
    assert_eq!(usage.account_usage().map(|u| u.function_count()), Some(0));
}

#[tokio::test]
async fn create_rejects_invalid_function_names() {
    let server = Server::start();
    let client = server.client();

    let got = refused(valid(&client, "bad name!")).await;
    assert_exact(
        &got,
        400,
        "ValidationException",
        &format!(
            "1 validation error detected: Value 'bad name!' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: {NAME_PATTERN}"
        ),
    );

    let long = "n".repeat(65);
    let got = refused(valid(&client, &long)).await;
    assert_exact(
        &got,
        400,
        "ValidationException",
        &format!(
            "1 validation error detected: Value '{long}' at 'functionName' failed to satisfy constraint: Member must have length less than or equal to 64"
        ),
    );

    // A create names an unqualified function.
    let got = refused(valid(&client, "fn:$LATEST")).await;
    assert_prefix(&got, 400, "InvalidParameterValueException", "");
    assert!(got.2.contains("fn:$LATEST"), "{got:?}");

    // 64 characters is fine.
    valid(&client, &"n".repeat(64)).send().await.unwrap();
    client
        .delete_function()
        .function_name("n".repeat(64))
        .send()
        .await
        .unwrap();
    assert_no_functions(&client).await;
}

#[tokio::test]
async fn create_rejects_memory_and_timeout_out_of_range() {
    let server = Server::start();
    let client = server.client();

    let got = refused(valid(&client, "f").memory_size(127)).await;
    assert_exact(
        &got,
        400,
        "ValidationException",
        "1 validation error detected: Value '127' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128",
    );
    let got = refused(valid(&client, "f").memory_size(10_241)).await;
    assert_exact(
        &got,
        400,
        "InvalidParameterValueException",
        "'MemorySize' value failed to satisfy constraint: Member must have value less than or equal to 10240",
    );
    let got = refused(valid(&client, "f").timeout(0)).await;
    assert_exact(
        &got,
        400,
        "ValidationException",
        "1 validation error detected: Value '0' at 'timeout' failed to satisfy constraint: Member must have value greater than or equal to 1",
    );
    let got = refused(valid(&client, "f").timeout(901)).await;
    assert_exact(
        &got,
        400,
        "InvalidParameterValueException",
        "'Timeout' value failed to satisfy constraint: Member must have value less than or equal to 900",
    );
    assert_no_functions(&client).await;

    // The bounds themselves are accepted.
    valid(&client, "edges")
        .memory_size(10_240)
        .timeout(900)
        .send()
        .await
        .unwrap();
    let c = client
        .get_function_configuration()
        .function_name("edges")
        .send()
        .await
        .unwrap();
    assert_eq!((c.memory_size(), c.timeout()), (Some(10_240), Some(900)));
}

#[tokio::test]
async fn create_rejects_invalid_environments() {
    let server = Server::start();
    let client = server.client();

    let big = "x".repeat(4100);
    let got = refused(valid(&client, "f").environment(env(&[("BIG", &big)]))).await;
    assert_prefix(
        &got,
        400,
        "InvalidParameterValueException",
        "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: ",
    );
    assert!(got.2.contains("BIG"), "{got:?}");

    let got = refused(valid(&client, "f").environment(env(&[("1BAD", "x")]))).await;
    assert_exact(
        &got,
        400,
        "ValidationException",
        "1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
    );

    let got = refused(
        valid(&client, "f").environment(env(&[("AWS_REGION", "eu-west-1"), ("FINE", "1")])),
    )
    .await;
    assert_exact(
        &got,
        400,
        "InvalidParameterValueException",
        "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: AWS_REGION",
    );
    assert_no_functions(&client).await;
}

#[tokio::test]
async fn create_rejects_unknown_runtimes_bad_handlers_and_roles() {
    let server = Server::start();
    let client = server.client();

    let got = refused(valid(&client, "f").runtime(Runtime::from("cobol9"))).await;
    assert_prefix(
        &got,
        400,
        "ValidationException",
        "1 validation error detected: Value 'cobol9' at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [",
    );
    assert!(got.2.contains("python3.12"), "{got:?}");

    // A runtime of the model that lamina cannot run.
    let got = refused(valid(&client, "f").runtime(Runtime::Java21)).await;
    assert_prefix(
        &got,
        400,
        "InvalidParameterValueException",
        "The runtime parameter of java21 is not supported",
    );

    let got = refused(valid(&client, "f").set_handler(None)).await;
    assert_exact(
        &got,
        400,
        "InvalidParameterValueException",
        "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
    );

    let got = refused(valid(&client, "f").handler("app handler")).await;
    assert_exact(
        &got,
        400,
        "ValidationException",
        "1 validation error detected: Value 'app handler' at 'handler' failed to satisfy constraint: Member must satisfy regular expression pattern: [^\\s]+",
    );

    for role in [
        "not-a-role",
        "arn:aws:iam::000000000000:user/lambda",
        "arn:aws:iam::0000:role/short-account",
    ] {
        let got = refused(valid(&client, "f").role(role)).await;
        assert_exact(
            &got,
            400,
            "ValidationException",
            &format!(
                "1 validation error detected: Value '{role}' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{{12}}:role/?[a-zA-Z_0-9+=,.@\\-_/]+"
            ),
        );
    }
    assert_no_functions(&client).await;

    // Role ARNs the pattern allows: with a path, and without the slash after `role`.
    for (name, role) in [
        (
            "with-path",
            "arn:aws:iam::000000000000:role/service-role/lambda",
        ),
        ("no-slash", "arn:aws:iam::000000000000:roleX"),
    ] {
        valid(&client, name).role(role).send().await.unwrap();
    }
}

#[tokio::test]
async fn create_rejects_a_package_that_is_not_a_zip() {
    let server = Server::start();
    let client = server.client();
    let got =
        refused(valid(&client, "f").code(code(b"just some text, no zip at all".to_vec()))).await;
    assert_prefix(&got, 400, "InvalidParameterValueException", NOT_A_ZIP);

    // A zip cut short.
    let mut truncated = python_zip(HANDLER);
    truncated.truncate(truncated.len() / 2);
    let got = refused(valid(&client, "f").code(code(truncated))).await;
    assert_prefix(&got, 400, "InvalidParameterValueException", NOT_A_ZIP);
    assert_no_functions(&client).await;
}

#[tokio::test]
async fn create_rejects_a_zip_over_50_mb() {
    let server = Server::start();
    let client = server.client();
    let zip = incompressible_zip(51 * 1024 * 1024);
    assert!(zip.len() > 52_428_800);
    let got = refused(valid(&client, "huge").code(code(zip))).await;
    assert_eq!(
        (got.0, got.1.as_str()),
        (413, "RequestEntityTooLargeException"),
        "{}",
        got.2
    );
    assert_eq!(
        got.2,
        "Request must be smaller than 69905067 bytes for the CreateFunction operation"
    );
    assert_no_functions(&client).await;
}

#[tokio::test]
async fn create_rejects_a_package_over_250_mb_unzipped() {
    let server = Server::start();
    let client = server.client();
    let zip = compressible_zip(251 * 1024 * 1024);
    assert!(zip.len() < 5 * 1024 * 1024, "zip is {} bytes", zip.len());
    let got = refused(valid(&client, "bomb").code(code(zip))).await;
    assert_exact(
        &got,
        400,
        "InvalidParameterValueException",
        "Unzipped size must be smaller than 262144000 bytes",
    );
    assert_no_functions(&client).await;
}

#[tokio::test]
async fn create_rejects_entries_that_escape_the_package() {
    let server = Server::start();
    let client = server.client();
    let cases = [
        (
            "../evil",
            zip(&[
                ("app.py", HANDLER.as_bytes(), 0o644),
                ("../evil", b"x".as_slice(), 0o644),
            ]),
        ),
        (
            "/etc/evil",
            zip(&[
                ("app.py", HANDLER.as_bytes(), 0o644),
                ("/etc/evil", b"x".as_slice(), 0o644),
            ]),
        ),
        ("link", zip_with_symlink("link", "../../etc/passwd")),
    ];
    for (entry, package) in cases {
        let got = refused(valid(&client, "escape").code(code(package))).await;
        assert_prefix(&got, 400, "InvalidParameterValueException", NOT_A_ZIP);
        assert!(
            got.2.contains(&format!("{entry:?}")),
            "the message names the entry {entry:?}: {got:?}"
        );
    }
    assert_no_functions(&client).await;

    // A symlink that stays inside is fine.
    valid(&client, "inside")
        .code(code(zip_with_symlink("alias.py", "app.py")))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn updates_are_validated_and_change_nothing() {
    let server = Server::start();
    let client = server.client();
    let original = python_zip(HANDLER);
    create(
        &client,
        "stable",
        Runtime::Python312,
        "app.handler",
        original.clone(),
    )
    .await;
    let before = client
        .get_function_configuration()
        .function_name("stable")
        .send()
        .await
        .unwrap();

    let err = client
        .update_function_code()
        .function_name("stable")
        .zip_file(Blob::new(b"not a zip".to_vec()))
        .send()
        .await
        .unwrap_err();
    let got = service_error(err);
    assert_prefix(&got, 400, "InvalidParameterValueException", NOT_A_ZIP);

    let err = client
        .update_function_code()
        .function_name("stable")
        .zip_file(Blob::new(zip(&[("../evil", b"x".as_slice(), 0o644)])))
        .send()
        .await
        .unwrap_err();
    let got = service_error(err);
    assert_prefix(&got, 400, "InvalidParameterValueException", NOT_A_ZIP);

    let err = client
        .update_function_configuration()
        .function_name("stable")
        .memory_size(127)
        .send()
        .await
        .unwrap_err();
    assert_exact(
        &service_error(err),
        400,
        "ValidationException",
        "1 validation error detected: Value '127' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128",
    );
    let err = client
        .update_function_configuration()
        .function_name("stable")
        .memory_size(10_241)
        .send()
        .await
        .unwrap_err();
    assert_exact(
        &service_error(err),
        400,
        "InvalidParameterValueException",
        "'MemorySize' value failed to satisfy constraint: Member must have value less than or equal to 10240",
    );
    let err = client
        .update_function_configuration()
        .function_name("stable")
        .environment(env(&[("AWS_LAMBDA_RUNTIME_API", "x")]))
        .send()
        .await
        .unwrap_err();
    let got = service_error(err);
    assert_prefix(
        &got,
        400,
        "InvalidParameterValueException",
        "Lambda was unable",
    );
    assert!(got.2.ends_with("AWS_LAMBDA_RUNTIME_API"), "{got:?}");

    let after = client
        .get_function_configuration()
        .function_name("stable")
        .send()
        .await
        .unwrap();
    assert_eq!(after.code_sha256(), Some(code_sha256(&original).as_str()));
    assert_eq!(after.revision_id(), before.revision_id());
    assert_eq!(after.memory_size(), Some(128));
    assert!(after.environment().is_none());
}

#[tokio::test]
async fn unknown_functions_are_404_with_their_arn() {
    let server = Server::start();
    let client = server.client();
    let arn = function_arn("us-east-1", "ghost");
    let mut results = Vec::new();
    results.push((
        "GetFunction",
        client
            .get_function()
            .function_name("ghost")
            .send()
            .await
            .map(|_| ())
            .map_err(service_error),
    ));
    results.push((
        "GetFunctionConfiguration",
        client
            .get_function_configuration()
            .function_name("ghost")
            .send()
            .await
            .map(|_| ())
            .map_err(service_error),
    ));
    results.push((
        "UpdateFunctionCode",
        client
            .update_function_code()
            .function_name("ghost")
            .zip_file(Blob::new(python_zip(HANDLER)))
            .send()
            .await
            .map(|_| ())
            .map_err(service_error),
    ));
    results.push((
        "UpdateFunctionConfiguration",
        client
            .update_function_configuration()
            .function_name("ghost")
            .timeout(5)
            .send()
            .await
            .map(|_| ())
            .map_err(service_error),
    ));
    results.push((
        "DeleteFunction",
        client
            .delete_function()
            .function_name("ghost")
            .send()
            .await
            .map(|_| ())
            .map_err(service_error),
    ));
    results.push((
        "ListTags",
        client
            .list_tags()
            .resource(&arn)
            .send()
            .await
            .map(|_| ())
            .map_err(service_error),
    ));
    results.push((
        "GetFunctionCodeSigningConfig",
        client
            .get_function_code_signing_config()
            .function_name("ghost")
            .send()
            .await
            .map(|_| ())
            .map_err(service_error),
    ));
    results.push((
        "Invoke",
        client
            .invoke()
            .function_name("ghost")
            .send()
            .await
            .map(|_| ())
            .map_err(service_error),
    ));
    for (op, result) in results {
        let (status, code, message) = result.expect_err(op);
        assert_eq!(
            (status, code.as_str()),
            (404, "ResourceNotFoundException"),
            "{op}"
        );
        assert_eq!(message, format!("Function not found: {arn}"), "{op}");
    }
}
