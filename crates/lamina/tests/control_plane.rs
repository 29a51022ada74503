//! The control plane end to end: a real `lamina serve` driven by the real `aws-sdk-lambda`
//! client. Each test asserts documented AWS behaviour (status, error code, message naming the
//! resource), so none of them can pass against a stub.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_lambda::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, FunctionCode, LastUpdateStatus, LogFormat, PackageType, Runtime, State,
    StateReasonCode, TracingMode,
};
use aws_sdk_lambda::waiters::function_active_v2::WaitUntilFunctionActiveV2Error;
use aws_sdk_lambda::Client;
use common::*;

/// A Python handler that returns its event and a marker of the code version.
fn echo_zip(marker: &str) -> Vec<u8> {
    python_zip(&format!(
        "def handler(event, context):\n    return {{'code': '{marker}', 'event': event}}\n"
    ))
}

/// Start a CreateFunction without waiting for the function to become Active.
async fn create_only(
    client: &Client,
    name: &str,
    code: Vec<u8>,
) -> aws_sdk_lambda::operation::create_function::CreateFunctionOutput {
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::Python312)
        .role(ROLE)
        .handler("app.handler")
        .code(FunctionCode::builder().zip_file(Blob::new(code)).build())
        .send()
        .await
        .expect("create function")
}

/// Records the HTTP status of the response it sees, for operations whose modelled success code
/// matters (the SDK accepts any 2xx).
#[derive(Debug, Clone, Default)]
struct StatusRecorder(Arc<AtomicU16>);

impl StatusRecorder {
    fn status(&self) -> u16 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Intercept for StatusRecorder {
    fn name(&self) -> &'static str {
        "StatusRecorder"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0
            .store(context.response().status().as_u16(), Ordering::SeqCst);
        Ok(())
    }
}

async fn invoke_json(client: &Client, name: &str, payload: &str) -> serde_json::Value {
    let resp = client
        .invoke()
        .function_name(name)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .expect("invoke");
    assert_eq!(resp.status_code(), 200);
    assert!(
        resp.function_error().is_none(),
        "function error: {:?}",
        resp.payload()
    );
    serde_json::from_slice(resp.payload().expect("payload").as_ref()).expect("JSON payload")
}

fn tags(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// 1 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_is_pending_then_active_and_get_function_reports_defaults_and_code() {
    let server = Server::start();
    let client = server.client();
    let zip = echo_zip("v1");
    let recorder = StatusRecorder::default();
    let out = client
        .create_function()
        .function_name("defaults")
        .runtime(Runtime::Python312)
        .role(ROLE)
        .handler("app.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip.clone()))
                .build(),
        )
        .customize()
        .interceptor(recorder.clone())
        .send()
        .await
        .expect("create function");
    assert_eq!(recorder.status(), 201, "CreateFunction answers 201 Created");
    assert_eq!(out.state(), Some(&State::Pending));
    assert_eq!(out.state_reason_code(), Some(&StateReasonCode::Creating));
    assert_eq!(
        out.function_arn(),
        Some(function_arn("us-east-1", "defaults").as_str())
    );

    client
        .wait_until_function_active_v2()
        .function_name("defaults")
        .wait(Duration::from_secs(30))
        .await
        .expect("the function becomes Active");

    let got = client
        .get_function()
        .function_name("defaults")
        .send()
        .await
        .unwrap();
    let c = got.configuration().expect("Configuration");
    assert_eq!(c.function_name(), Some("defaults"));
    assert_eq!(
        c.function_arn(),
        Some(function_arn("us-east-1", "defaults").as_str()),
        "unqualified request, unqualified ARN"
    );
    assert_eq!(c.runtime(), Some(&Runtime::Python312));
    assert_eq!(c.role(), Some(ROLE));
    assert_eq!(c.handler(), Some("app.handler"));
    assert_eq!(c.version(), Some("$LATEST"));
    assert_eq!(c.timeout(), Some(3));
    assert_eq!(c.memory_size(), Some(128));
    assert_eq!(c.package_type(), Some(&PackageType::Zip));
    assert_eq!(c.architectures(), &[Architecture::X8664]);
    assert_eq!(c.ephemeral_storage().map(|e| e.size()), Some(512));
    assert_eq!(
        c.tracing_config().and_then(|t| t.mode()),
        Some(&TracingMode::PassThrough)
    );
    let logging = c.logging_config().expect("LoggingConfig");
    assert_eq!(logging.log_group(), Some("/aws/lambda/defaults"));
    assert_eq!(logging.log_format(), Some(&LogFormat::Text));
    assert_eq!(c.state(), Some(&State::Active));
    assert_eq!(c.last_update_status(), Some(&LastUpdateStatus::Successful));
    assert_eq!(c.code_sha256(), Some(code_sha256(&zip).as_str()));
    assert_eq!(c.code_size(), zip.len() as i64);
    let modified = c.last_modified().expect("LastModified");
    assert!(is_lambda_timestamp(modified), "LastModified {modified:?}");
    assert!(c.revision_id().is_some_and(|r| !r.is_empty()));

    let code = got.code().expect("Code");
    assert_eq!(code.repository_type(), Some("S3"));
    let location = code.location().expect("Code.Location");
    let download = http_get(location);
    assert_eq!(download.status, 200, "{location}");
    assert!(
        download.body == zip,
        "Code.Location serves exactly the uploaded zip ({} bytes, expected {})",
        download.body.len(),
        zip.len()
    );
}

#[tokio::test]
async fn code_location_refuses_tampered_and_expired_links() {
    let server = Server::start();
    let client = server.client();
    let zip = echo_zip("signed");
    create(
        &client,
        "signed",
        Runtime::Python312,
        "app.handler",
        zip.clone(),
    )
    .await;
    let got = client
        .get_function()
        .function_name("signed")
        .send()
        .await
        .unwrap();
    let location = got.code().and_then(|c| c.location()).unwrap().to_string();
    assert_eq!(http_get(&location).body, zip, "the untouched link works");

    // Change one character of the signature.
    let (base, signature) = location.rsplit_once("signature=").unwrap();
    let last = signature.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    let tampered = format!(
        "{base}signature={}{flipped}",
        &signature[..signature.len() - 1]
    );
    let resp = http_get(&tampered);
    assert_eq!(resp.status, 403, "tampered signature");
    assert_eq!(
        resp.header("x-amzn-ErrorType"),
        Some("AccessDeniedException")
    );
    assert_ne!(resp.body, zip);

    // Move the expiry: the signature covers it.
    let expires: i64 = location
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("expires="))
        .unwrap()
        .parse()
        .unwrap();
    let stretched = location.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 3600),
    );
    let resp = http_get(&stretched);
    assert_eq!(
        resp.status, 403,
        "a changed expiry invalidates the signature"
    );

    // A correctly signed link whose time is up. The link is signed with HMAC-SHA256 over
    // "{hex}\n{expires}" with the key in the data directory; a fresh link signed the same way
    // must work, so the refusal below is about the expiry alone.
    let key = std::fs::read(server.data_dir.path().join("url.key")).unwrap();
    let hex_sha = hex(&sha256(&zip));
    let signed = |expires: i64| {
        let mac = hmac_sha256(&key, format!("{hex_sha}\n{expires}").as_bytes());
        format!(
            "{}/_lamina/code/{hex_sha}.zip?expires={expires}&signature={}",
            server.endpoint,
            hex(&mac)
        )
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(
        http_get(&signed(now + 60)).body,
        zip,
        "control: a fresh link"
    );
    let resp = http_get(&signed(now - 1));
    assert_eq!(resp.status, 403, "expired link");
    assert_eq!(
        resp.header("x-amzn-ErrorType"),
        Some("AccessDeniedException")
    );
    let body = String::from_utf8_lossy(&resp.body);
    assert!(body.contains("expired"), "{body}");
}

// 2 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_function_configuration_accepts_every_name_form() {
    let server = Server::start();
    let client = server.client();
    create(
        &client,
        "forms",
        Runtime::Python312,
        "app.handler",
        echo_zip("f"),
    )
    .await;
    let arn = function_arn("us-east-1", "forms");
    let latest_arn = format!("{arn}:$LATEST");

    let cases: &[(&str, Option<&str>, &str)] = &[
        ("forms", None, &arn),
        ("forms", Some("$LATEST"), &latest_arn),
        ("forms:$LATEST", None, &latest_arn),
        ("000000000000:function:forms", None, &arn),
        ("000000000000:function:forms:$LATEST", None, &latest_arn),
        (&arn, None, &arn),
        (&latest_arn, None, &latest_arn),
        (&arn, Some("$LATEST"), &latest_arn),
    ];
    for (name, qualifier, expected_arn) in cases {
        let c = client
            .get_function_configuration()
            .function_name(*name)
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} / {qualifier:?}: {e:?}"));
        assert_eq!(c.function_name(), Some("forms"), "{name} / {qualifier:?}");
        assert_eq!(
            c.function_arn(),
            Some(*expected_arn),
            "{name} / {qualifier:?}"
        );
        assert_eq!(c.version(), Some("$LATEST"));
        // GetFunction resolves the same way.
        let g = client
            .get_function()
            .function_name(*name)
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetFunction {name} / {qualifier:?}: {e:?}"));
        assert_eq!(
            g.configuration().and_then(|c| c.function_arn()),
            Some(*expected_arn)
        );
    }

    // The same name in another region's ARN is another function, which does not exist.
    let elsewhere = function_arn("eu-west-1", "forms");
    let err = client
        .get_function_configuration()
        .function_name(&elsewhere)
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(message.contains(&elsewhere), "{message}");
    let err = client
        .get_function()
        .function_name(&elsewhere)
        .send()
        .await
        .unwrap_err();
    assert_eq!(service_error(err).0, 404);

    // A qualifier in the name and a different one in the query disagree.
    let err = client
        .get_function_configuration()
        .function_name("forms:$LATEST")
        .qualifier("7")
        .send()
        .await
        .unwrap_err();
    let (status, code, _) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
}

// 3 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_functions_pages_through_every_function_once_in_name_order() {
    let server = Server::start();
    let client = server.client();
    let names = ["page-a", "page-b", "page-c", "page-d", "page-e"];
    // Created in a shuffled order; listed by name.
    for name in ["page-c", "page-a", "page-e", "page-b", "page-d"] {
        create_only(&client, name, echo_zip(name)).await;
    }
    for name in names {
        wait_active(&client, name).await;
    }

    let mut pages = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .list_functions()
            .max_items(2)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        let items: Vec<String> = page
            .functions()
            .iter()
            .map(|f| {
                assert!(f.state().is_none(), "ListFunctions leaves out State: {f:?}");
                assert!(f.state_reason_code().is_none());
                assert!(f.last_update_status().is_none());
                let name = f.function_name().unwrap();
                assert_eq!(
                    f.function_arn(),
                    Some(function_arn("us-east-1", name).as_str())
                );
                assert_eq!(f.code_sha256(), Some(code_sha256(&echo_zip(name)).as_str()));
                name.to_string()
            })
            .collect();
        pages.push(items);
        marker = page.next_marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
        assert!(pages.len() < 10, "pagination does not end");
    }
    assert_eq!(
        pages,
        vec![
            vec!["page-a", "page-b"],
            vec!["page-c", "page-d"],
            vec!["page-e"]
        ]
    );

    // Without MaxItems everything fits on one page, in order.
    let all = client.list_functions().send().await.unwrap();
    assert!(all.next_marker().is_none());
    let listed: Vec<&str> = all
        .functions()
        .iter()
        .filter_map(|f| f.function_name())
        .collect();
    assert_eq!(listed, names);

    for bad in [0, 10_001] {
        let err = client
            .list_functions()
            .max_items(bad)
            .send()
            .await
            .unwrap_err();
        let (status, code, message) = service_error(err);
        assert_eq!(
            (status, code.as_str()),
            (400, "ValidationException"),
            "{bad}"
        );
        let bound = if bad < 1 {
            "Member must have value greater than or equal to 1"
        } else {
            "Member must have value less than or equal to 10000"
        };
        assert_eq!(
            message,
            format!(
                "1 validation error detected: Value '{bad}' at 'maxItems' failed to satisfy constraint: {bound}"
            )
        );
    }
}

// 4 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn update_function_configuration_applies_settings_and_checks_the_revision() {
    let server = Server::start();
    let client = server.client();
    create_with(
        &client,
        "configured",
        Runtime::Python312,
        "app.handler",
        python_zip(
            "import os\ndef handler(event, context):\n    return {'A': os.environ.get('KEEP_A'), 'C': os.environ.get('ONLY_C')}\ndef other(event, context):\n    return {'handler': 'other', 'A': os.environ.get('KEEP_A'), 'C': os.environ.get('ONLY_C')}\n",
        ),
        |b| {
            b.environment(env(&[("KEEP_A", "1"), ("KEEP_B", "2")]))
                .description("before")
        },
    )
    .await;
    let before = client
        .get_function()
        .function_name("configured")
        .send()
        .await
        .unwrap();
    let before = before.configuration().unwrap();
    let rev0 = before.revision_id().unwrap().to_string();
    assert_eq!(
        before.environment().and_then(|e| e.variables()),
        Some(&tags(&[("KEEP_A", "1"), ("KEEP_B", "2")]))
    );

    let updated = client
        .update_function_configuration()
        .function_name("configured")
        .memory_size(256)
        .timeout(10)
        .description("after")
        .handler("app.other")
        .environment(env(&[("ONLY_C", "3")]))
        .revision_id(&rev0)
        .send()
        .await
        .expect("update with the current RevisionId");
    assert_eq!(
        updated.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    let rev1 = updated.revision_id().unwrap().to_string();
    assert_ne!(rev1, rev0, "an update makes a new RevisionId");
    assert_eq!(updated.memory_size(), Some(256));

    wait_updated(&client, "configured").await;
    let after = client
        .get_function()
        .function_name("configured")
        .send()
        .await
        .unwrap();
    let c = after.configuration().unwrap();
    assert_eq!(c.last_update_status(), Some(&LastUpdateStatus::Successful));
    assert_eq!(c.state(), Some(&State::Active));
    assert_eq!(c.memory_size(), Some(256));
    assert_eq!(c.timeout(), Some(10));
    assert_eq!(c.description(), Some("after"));
    assert_eq!(c.handler(), Some("app.other"));
    assert_eq!(
        c.environment().and_then(|e| e.variables()),
        Some(&tags(&[("ONLY_C", "3")])),
        "Environment.Variables is replaced as a whole, not merged"
    );
    assert_ne!(c.revision_id(), Some(rev0.as_str()));
    assert!(is_lambda_timestamp(c.last_modified().unwrap()));
    // The function runs with the new handler and environment.
    let out = invoke_json(&client, "configured", "{}").await;
    assert_eq!(
        out,
        serde_json::json!({"handler": "other", "A": null, "C": "3"})
    );

    // A RevisionId that is no longer current.
    let err = client
        .update_function_configuration()
        .function_name("configured")
        .timeout(20)
        .revision_id(&rev0)
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (412, "PreconditionFailedException")
    );
    assert!(
        message.contains("The Revision Id provided does not match the latest Revision Id"),
        "{message}"
    );
    let unchanged = client
        .get_function_configuration()
        .function_name("configured")
        .send()
        .await
        .unwrap();
    assert_eq!(
        unchanged.timeout(),
        Some(10),
        "a refused update changes nothing"
    );

    // The current one works.
    let current = unchanged.revision_id().unwrap().to_string();
    let ok = client
        .update_function_configuration()
        .function_name("configured")
        .timeout(20)
        .revision_id(&current)
        .send()
        .await
        .expect("update with the current RevisionId");
    assert_eq!(ok.timeout(), Some(20));
    assert_ne!(ok.revision_id(), Some(current.as_str()));
    wait_updated(&client, "configured").await;
}

// 5 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn update_function_code_replaces_the_package_and_dry_run_does_not() {
    let server = Server::start();
    let client = server.client();
    let v1 = echo_zip("v1");
    let v2 = echo_zip("version-two");
    let v3 = echo_zip("v3");
    create(
        &client,
        "recode",
        Runtime::Python312,
        "app.handler",
        v1.clone(),
    )
    .await;
    let rev0 = client
        .get_function_configuration()
        .function_name("recode")
        .send()
        .await
        .unwrap()
        .revision_id()
        .unwrap()
        .to_string();

    // DryRun: reports the new package, applies nothing.
    let dry = client
        .update_function_code()
        .function_name("recode")
        .zip_file(Blob::new(v2.clone()))
        .dry_run(true)
        .send()
        .await
        .unwrap();
    assert_eq!(dry.code_sha256(), Some(code_sha256(&v2).as_str()));
    assert_eq!(dry.code_size(), v2.len() as i64);
    let still = client
        .get_function_configuration()
        .function_name("recode")
        .send()
        .await
        .unwrap();
    assert_eq!(still.code_sha256(), Some(code_sha256(&v1).as_str()));
    assert_eq!(still.code_size(), v1.len() as i64);
    assert_eq!(still.revision_id(), Some(rev0.as_str()));
    assert_eq!(invoke_json(&client, "recode", "1").await["code"], "v1");

    let updated = client
        .update_function_code()
        .function_name("recode")
        .zip_file(Blob::new(v2.clone()))
        .revision_id(&rev0)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.code_sha256(), Some(code_sha256(&v2).as_str()));
    assert_eq!(updated.code_size(), v2.len() as i64);
    assert_eq!(
        updated.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    assert_ne!(updated.revision_id(), Some(rev0.as_str()));
    wait_updated(&client, "recode").await;
    let got = client
        .get_function()
        .function_name("recode")
        .send()
        .await
        .unwrap();
    let c = got.configuration().unwrap();
    assert_eq!(c.code_sha256(), Some(code_sha256(&v2).as_str()));
    assert_eq!(c.code_size(), v2.len() as i64);
    let location = got.code().and_then(|c| c.location()).unwrap();
    assert!(
        http_get(location).body == v2,
        "Code.Location serves the new zip"
    );
    assert_eq!(
        invoke_json(&client, "recode", "2").await["code"],
        "version-two"
    );

    // A stale RevisionId is refused and changes nothing.
    let err = client
        .update_function_code()
        .function_name("recode")
        .zip_file(Blob::new(v3))
        .revision_id(&rev0)
        .send()
        .await
        .unwrap_err();
    let (status, code, _) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (412, "PreconditionFailedException")
    );
    let c = client
        .get_function_configuration()
        .function_name("recode")
        .send()
        .await
        .unwrap();
    assert_eq!(c.code_sha256(), Some(code_sha256(&v2).as_str()));
}

// 6 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn delete_function_removes_it_and_reports_the_arn_afterwards() {
    let server = Server::start();
    let client = server.client();
    create(
        &client,
        "doomed",
        Runtime::Python312,
        "app.handler",
        echo_zip("d"),
    )
    .await;
    let arn = function_arn("us-east-1", "doomed");

    let err = client
        .delete_function()
        .function_name("doomed")
        .qualifier("$LATEST")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert!(message.contains("$LATEST"), "{message}");
    client
        .get_function()
        .function_name("doomed")
        .send()
        .await
        .expect("still there after the refused delete");

    client
        .delete_function()
        .function_name("doomed")
        .send()
        .await
        .expect("delete");

    let err = client
        .get_function()
        .function_name("doomed")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(message.contains(&arn), "{message}");
    let err = client
        .get_function_configuration()
        .function_name("doomed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(service_error(err).0, 404);
    assert!(client
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
        .is_empty());

    let err = client
        .delete_function()
        .function_name("doomed")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(message.contains(&arn), "{message}");

    // The name is free again.
    create(
        &client,
        "doomed",
        Runtime::Python312,
        "app.handler",
        echo_zip("again"),
    )
    .await;
    assert_eq!(invoke_json(&client, "doomed", "0").await["code"], "again");
}

// 7 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn creating_an_existing_function_conflicts() {
    let server = Server::start();
    let client = server.client();
    let first = echo_zip("first");
    create(
        &client,
        "dup",
        Runtime::Python312,
        "app.handler",
        first.clone(),
    )
    .await;
    let err = client
        .create_function()
        .function_name("dup")
        .runtime(Runtime::Python312)
        .role(ROLE)
        .handler("app.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(echo_zip("second")))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (409, "ResourceConflictException"));
    assert_eq!(message, "Function already exist: dup");
    let c = client
        .get_function_configuration()
        .function_name("dup")
        .send()
        .await
        .unwrap();
    assert_eq!(c.code_sha256(), Some(code_sha256(&first).as_str()));
}

// 8 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn account_settings_report_limits_and_follow_usage() {
    let server = Server::start();
    let client = server.client();
    let usage = |s: &aws_sdk_lambda::operation::get_account_settings::GetAccountSettingsOutput| {
        let u = s.account_usage().expect("AccountUsage");
        (u.function_count(), u.total_code_size())
    };

    let s = client.get_account_settings().send().await.unwrap();
    let limit = s.account_limit().expect("AccountLimit");
    assert_eq!(limit.code_size_zipped(), 52_428_800);
    assert_eq!(limit.code_size_unzipped(), 262_144_000);
    assert_eq!(limit.concurrent_executions(), 1000);
    assert_eq!(limit.unreserved_concurrent_executions(), Some(1000));
    assert_eq!(limit.total_code_size(), 80_530_636_800);
    assert_eq!(usage(&s), (0, 0));

    let a = echo_zip("a");
    let b = python_zip(&format!(
        "# padding {}\ndef handler(event, context):\n    return 1\n",
        "x".repeat(500)
    ));
    create(
        &client,
        "usage-a",
        Runtime::Python312,
        "app.handler",
        a.clone(),
    )
    .await;
    create(
        &client,
        "usage-b",
        Runtime::Python312,
        "app.handler",
        b.clone(),
    )
    .await;
    let s = client.get_account_settings().send().await.unwrap();
    assert_eq!(usage(&s), (2, (a.len() + b.len()) as i64));

    client
        .delete_function()
        .function_name("usage-a")
        .send()
        .await
        .unwrap();
    let s = client.get_account_settings().send().await.unwrap();
    assert_eq!(usage(&s), (1, b.len() as i64));

    // Usage is per region.
    let eu = server.client_in("eu-west-1");
    let s = eu.get_account_settings().send().await.unwrap();
    assert_eq!(usage(&s), (0, 0));
}

// 9 ------------------------------------------------------------------------------------------

#[tokio::test]
async fn tags_are_set_at_create_and_changed_by_tag_and_untag() {
    let server = Server::start();
    let client = server.client();
    create_with(
        &client,
        "tagged",
        Runtime::Python312,
        "app.handler",
        echo_zip("t"),
        |b| b.tags("team", "core").tags("env", "test"),
    )
    .await;
    let arn = function_arn("us-east-1", "tagged");

    let got = client
        .get_function()
        .function_name("tagged")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.tags(),
        Some(&tags(&[("team", "core"), ("env", "test")]))
    );
    let listed = client.list_tags().resource(&arn).send().await.unwrap();
    assert_eq!(
        listed.tags(),
        Some(&tags(&[("team", "core"), ("env", "test")]))
    );

    let recorder = StatusRecorder::default();
    client
        .tag_resource()
        .resource(&arn)
        .tags("env", "prod")
        .tags("owner", "me")
        .customize()
        .interceptor(recorder.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(recorder.status(), 204, "TagResource answers 204");
    let listed = client.list_tags().resource(&arn).send().await.unwrap();
    assert_eq!(
        listed.tags(),
        Some(&tags(&[("team", "core"), ("env", "prod"), ("owner", "me")]))
    );

    client
        .untag_resource()
        .resource(&arn)
        .tag_keys("team")
        .tag_keys("owner")
        .tag_keys("never-set")
        .send()
        .await
        .unwrap();
    let listed = client.list_tags().resource(&arn).send().await.unwrap();
    assert_eq!(listed.tags(), Some(&tags(&[("env", "prod")])));
    let got = client
        .get_function()
        .function_name("tagged")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tags(), Some(&tags(&[("env", "prod")])));

    // An unknown function.
    let missing = function_arn("us-east-1", "no-such-function");
    let err = client
        .tag_resource()
        .resource(&missing)
        .tags("a", "b")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(message.contains(&missing), "{message}");
    let err = client
        .untag_resource()
        .resource(&missing)
        .tag_keys("a")
        .send()
        .await
        .unwrap_err();
    let (status, _, message) = service_error(err);
    assert_eq!(status, 404);
    assert!(message.contains(&missing), "{message}");

    // Not an ARN at all.
    let err = client
        .tag_resource()
        .resource("tagged")
        .tags("a", "b")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    assert!(
        message.contains("Value 'tagged' at 'resource'"),
        "{message}"
    );
    assert_eq!(
        client
            .list_tags()
            .resource(&arn)
            .send()
            .await
            .unwrap()
            .tags(),
        Some(&tags(&[("env", "prod")])),
        "refused calls change nothing"
    );
}

// 10 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn get_function_code_signing_config_reports_none() {
    let server = Server::start();
    let client = server.client();
    create(
        &client,
        "unsigned",
        Runtime::Python312,
        "app.handler",
        echo_zip("u"),
    )
    .await;
    let out = client
        .get_function_code_signing_config()
        .function_name("unsigned")
        .send()
        .await
        .unwrap();
    assert_eq!(out.code_signing_config_arn(), "");
    assert_eq!(out.function_name(), "unsigned");
    // By ARN too: FunctionName is the bare name.
    let out = client
        .get_function_code_signing_config()
        .function_name(function_arn("us-east-1", "unsigned"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_name(), "unsigned");

    let err = client
        .get_function_code_signing_config()
        .function_name("nobody")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(
        message.contains(&function_arn("us-east-1", "nobody")),
        "{message}"
    );
}

// 11 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn functions_belong_to_one_region() {
    let server = Server::start();
    let us = server.client();
    let eu = server.client_in("eu-west-1");
    let us_zip = echo_zip("us");
    let eu_zip = echo_zip("eu");
    create(
        &us,
        "regional",
        Runtime::Python312,
        "app.handler",
        us_zip.clone(),
    )
    .await;

    let err = eu
        .get_function()
        .function_name("regional")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(
        message.contains(&function_arn("eu-west-1", "regional")),
        "{message}"
    );
    assert!(eu
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
        .is_empty());

    create(
        &eu,
        "regional",
        Runtime::Python312,
        "app.handler",
        eu_zip.clone(),
    )
    .await;
    let e = eu
        .get_function_configuration()
        .function_name("regional")
        .send()
        .await
        .unwrap();
    assert_eq!(
        e.function_arn(),
        Some(function_arn("eu-west-1", "regional").as_str())
    );
    assert_eq!(e.code_sha256(), Some(code_sha256(&eu_zip).as_str()));
    let u = us
        .get_function_configuration()
        .function_name("regional")
        .send()
        .await
        .unwrap();
    assert_eq!(
        u.function_arn(),
        Some(function_arn("us-east-1", "regional").as_str())
    );
    assert_eq!(u.code_sha256(), Some(code_sha256(&us_zip).as_str()));
    assert_eq!(invoke_json(&us, "regional", "0").await["code"], "us");
    assert_eq!(invoke_json(&eu, "regional", "0").await["code"], "eu");

    // Deleting one leaves the other.
    eu.delete_function()
        .function_name("regional")
        .send()
        .await
        .unwrap();
    assert_eq!(
        us.list_functions().send().await.unwrap().functions().len(),
        1
    );
}

// 12 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn functions_survive_a_restart_and_a_crash() {
    let mut server = Server::start();
    let client = server.client();
    let zip = echo_zip("durable");
    create_with(
        &client,
        "durable",
        Runtime::Python312,
        "app.handler",
        zip.clone(),
        |b| b.tags("k", "v").environment(env(&[("EE", "1")])),
    )
    .await;
    let before = client
        .get_function_configuration()
        .function_name("durable")
        .send()
        .await
        .unwrap();

    let check = |client: Client, when: &'static str| {
        let zip = zip.clone();
        let before = before.clone();
        async move {
            let got = client
                .get_function()
                .function_name("durable")
                .send()
                .await
                .unwrap_or_else(|e| panic!("after {when}: {e:?}"));
            let c = got.configuration().unwrap();
            assert_eq!(c.code_sha256(), Some(code_sha256(&zip).as_str()), "{when}");
            assert_eq!(c.revision_id(), before.revision_id(), "{when}");
            assert_eq!(c.environment(), before.environment(), "{when}");
            assert_eq!(c.state(), Some(&State::Active), "{when}");
            assert_eq!(got.tags(), Some(&tags(&[("k", "v")])), "{when}");
            assert!(
                http_get(got.code().unwrap().location().unwrap()).body == zip,
                "{when}"
            );
            assert_eq!(
                invoke_json(&client, "durable", "\"after\"").await,
                serde_json::json!({"code": "durable", "event": "after"}),
                "{when}"
            );
        }
    };

    server.restart();
    check(server.client(), "a clean restart").await;

    // A function created just before a crash: whatever state the crash left it in, it settles
    // at the next start.
    create_only(&server.client(), "late", echo_zip("late")).await;
    server.crash_and_restart();
    check(server.client(), "a crash").await;
    wait_active(&server.client(), "late").await;
    assert_eq!(
        invoke_json(&server.client(), "late", "0").await["code"],
        "late"
    );
}

// 13 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn a_provided_package_without_a_runnable_bootstrap_fails() {
    let server = Server::start();
    let client = server.client();
    let cases = [
        (
            "no-bootstrap",
            zip(&[("README", b"no bootstrap here".as_slice(), 0o644)]),
            StateReasonCode::FunctionErrorInvalidEntryPoint,
        ),
        (
            "not-executable",
            bootstrap_zip("#!/bin/sh\necho never\n", 0o644),
            StateReasonCode::FunctionErrorPermissionDenied,
        ),
    ];
    for (name, code, reason_code) in cases {
        let out = client
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .role(ROLE)
            .handler("unused")
            .code(FunctionCode::builder().zip_file(Blob::new(code)).build())
            .send()
            .await
            .unwrap();
        assert_eq!(out.state(), Some(&State::Pending), "{name}");
        let err = client
            .wait_until_function_active_v2()
            .function_name(name)
            .wait(Duration::from_secs(30))
            .await
            .expect_err("the active waiter fails on a Failed function");
        assert!(
            matches!(err, WaitUntilFunctionActiveV2Error::FailureState(_)),
            "{name}: the waiter ends in its failure state, not a timeout: {err:?}"
        );
        let c = client
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(c.state(), Some(&State::Failed), "{name}");
        assert_eq!(c.state_reason_code(), Some(&reason_code), "{name}");
        assert!(
            c.state_reason().is_some_and(|r| !r.is_empty()),
            "{name}: {c:?}"
        );
        assert_eq!(c.last_update_status(), Some(&LastUpdateStatus::Failed));
    }
}

// 14 -----------------------------------------------------------------------------------------

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let server = Server::start();
    let client = server.client();
    let mut seen = std::collections::HashSet::new();
    let mut note = |id: Option<&str>, what: &str| {
        let id = id.unwrap_or_else(|| panic!("{what} has no x-amzn-RequestId"));
        assert_eq!(id.len(), 36, "{what}: {id}");
        assert!(
            seen.insert(id.to_string()),
            "{what}: request id {id} reused"
        );
    };

    let out = create_only(&client, "ids", echo_zip("ids")).await;
    note(out.request_id(), "CreateFunction");
    wait_active(&client, "ids").await;
    let out = client
        .get_function()
        .function_name("ids")
        .send()
        .await
        .unwrap();
    note(out.request_id(), "GetFunction");
    let out = client.list_functions().send().await.unwrap();
    note(out.request_id(), "ListFunctions");
    let out = client.get_account_settings().send().await.unwrap();
    note(out.request_id(), "GetAccountSettings");
    let out = client
        .invoke()
        .function_name("ids")
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap();
    note(out.request_id(), "Invoke");

    let err = client
        .get_function()
        .function_name("missing")
        .send()
        .await
        .unwrap_err();
    note(err.request_id(), "a 404");
    let err = client
        .create_function()
        .function_name("bad name!")
        .runtime(Runtime::Python312)
        .role(ROLE)
        .handler("app.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(echo_zip("x")))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    note(err.request_id(), "a 400");
    let err = client
        .update_function_code()
        .function_name("ids")
        .zip_file(Blob::new(echo_zip("y")))
        .revision_id("stale")
        .send()
        .await
        .unwrap_err();
    note(err.request_id(), "a 412");
    let out = client
        .delete_function()
        .function_name("ids")
        .send()
        .await
        .unwrap();
    note(out.request_id(), "DeleteFunction");

    // The download link, outside the SDK, too.
    let resp = http_get(&format!(
        "{}/_lamina/code/{}.zip",
        server.endpoint,
        "0".repeat(64)
    ));
    assert_eq!(resp.status, 403);
    note(resp.header("x-amzn-RequestId"), "a refused download");
}
