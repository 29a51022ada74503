//! Published versions end to end: PublishVersion (and `Publish` on CreateFunction /
//! UpdateFunctionCode), its preconditions, ListVersionsByFunction, qualified reads and invokes,
//! immutability, and DeleteFunction with a `Qualifier`. A real `lamina serve` driven by the real
//! `aws-sdk-lambda`; where AWS's recorded behaviour is known (LocalStack's AWS-validated
//! snapshots of `test_lambda_api.py`), the assertion follows it and says so.

mod common;

use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Runtime, State};
use aws_sdk_lambda::Client;
use common::*;
use serde_json::json;
use std::time::Duration;

const REVISION_MISMATCH: &str = "The Revision Id provided does not match the latest Revision Id";

async fn probe_function(client: &Client, name: &str, marker: &str, my_var: &str) {
    create_with(
        client,
        name,
        Runtime::Python312,
        "app.handler",
        probe_zip(marker),
        |b| b.environment(env(&[("MY_VAR", my_var)])),
    )
    .await;
}

async fn publish(
    client: &Client,
    name: &str,
) -> aws_sdk_lambda::operation::publish_version::PublishVersionOutput {
    client
        .publish_version()
        .function_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("publish {name}: {e:?}"))
}

async fn set_var(client: &Client, name: &str, value: &str) {
    client
        .update_function_configuration()
        .function_name(name)
        .environment(env(&[("MY_VAR", value)]))
        .send()
        .await
        .expect("update configuration");
    wait_updated(client, name).await;
}

async fn set_code(client: &Client, name: &str, marker: &str) {
    client
        .update_function_code()
        .function_name(name)
        .zip_file(Blob::new(probe_zip(marker)))
        .send()
        .await
        .expect("update code");
    wait_updated(client, name).await;
}

async fn wait_version_active(client: &Client, name: &str, version: &str) {
    client
        .wait_until_function_active_v2()
        .function_name(name)
        .qualifier(version)
        .wait(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("version {version} of {name} becomes Active: {e:?}"));
}

fn versions_only(list: &[(String, String)]) -> Vec<&str> {
    list.iter().map(|(v, _)| v.as_str()).collect()
}

#[tokio::test]
async fn publish_numbers_versions_and_returns_the_last_one_when_nothing_changed() {
    let server = Server::start();
    let client = server.client();
    let code = probe_zip("v1");
    create_with(
        &client,
        "pub",
        Runtime::Python312,
        "app.handler",
        code.clone(),
        |b| {
            b.description("initial")
                .environment(env(&[("MY_VAR", "one")]))
        },
    )
    .await;
    assert_eq!(
        list_versions(&client, "pub").await,
        vec![("$LATEST".to_string(), qualified_arn("pub", "$LATEST"))],
        "before any publish only $LATEST, with its qualified ARN"
    );

    let spy = StatusSpy::default();
    let v1 = client
        .publish_version()
        .function_name("pub")
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("publish");
    assert_eq!(spy.status(), 201, "PublishVersion answers 201 Created");
    assert_eq!(v1.version(), Some("1"));
    assert_eq!(v1.function_arn(), Some(qualified_arn("pub", "1").as_str()));
    assert_eq!(v1.function_name(), Some("pub"));
    assert_eq!(v1.state(), Some(&State::Active));
    assert_eq!(
        v1.description(),
        Some("initial"),
        "without a Description the version takes $LATEST's"
    );
    assert_eq!(v1.code_sha256(), Some(code_sha256(&code).as_str()));
    assert_eq!(
        v1.environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get("MY_VAR"))
            .map(String::as_str),
        Some("one")
    );
    let rev1 = v1.revision_id().expect("RevisionId").to_string();

    // Nothing changed: the same version again, not a new one.
    let again = publish(&client, "pub").await;
    assert_eq!(
        again.version(),
        Some("1"),
        "nothing changed since version 1"
    );
    assert_eq!(
        again.function_arn(),
        Some(qualified_arn("pub", "1").as_str())
    );
    assert_eq!(again.revision_id(), Some(rev1.as_str()));
    // A new Description alone is not a change of $LATEST (AWS recorded: the existing version
    // comes back with its own description).
    let described = client
        .publish_version()
        .function_name("pub")
        .description("not a change")
        .send()
        .await
        .expect("publish with a description");
    assert_eq!(described.version(), Some("1"));
    assert_eq!(described.description(), Some("initial"));
    assert_eq!(
        versions_only(&list_versions(&client, "pub").await),
        ["$LATEST", "1"]
    );

    // A configuration change (Description through UpdateFunctionConfiguration) is a change.
    client
        .update_function_configuration()
        .function_name("pub")
        .description("second")
        .send()
        .await
        .expect("update description");
    wait_updated(&client, "pub").await;
    let v2 = client
        .publish_version()
        .function_name("pub")
        .description("notes for 2")
        .send()
        .await
        .expect("publish 2");
    assert_eq!(v2.version(), Some("2"));
    assert_eq!(v2.function_arn(), Some(qualified_arn("pub", "2").as_str()));
    assert_eq!(
        v2.description(),
        Some("notes for 2"),
        "the request's Description is the version's"
    );
    let latest = client
        .get_function_configuration()
        .function_name("pub")
        .send()
        .await
        .unwrap();
    assert_eq!(
        latest.description(),
        Some("second"),
        "publishing does not change $LATEST's description"
    );
    assert_eq!(latest.version(), Some("$LATEST"));

    // A code change is a change.
    set_code(&client, "pub", "v3").await;
    let v3 = publish(&client, "pub").await;
    assert_eq!(v3.version(), Some("3"));
    assert_eq!(v3.description(), Some("second"));
    assert_eq!(
        v3.code_sha256(),
        Some(code_sha256(&probe_zip("v3")).as_str())
    );

    // An environment change is a change.
    set_var(&client, "pub", "four").await;
    assert_eq!(publish(&client, "pub").await.version(), Some("4"));
    assert_eq!(publish(&client, "pub").await.version(), Some("4"));

    let all = list_versions(&client, "pub").await;
    assert_eq!(
        all,
        vec![
            ("$LATEST".to_string(), qualified_arn("pub", "$LATEST")),
            ("1".to_string(), qualified_arn("pub", "1")),
            ("2".to_string(), qualified_arn("pub", "2")),
            ("3".to_string(), qualified_arn("pub", "3")),
            ("4".to_string(), qualified_arn("pub", "4")),
        ],
        "$LATEST first, then ascending, each with its qualified ARN"
    );
}

#[tokio::test]
async fn publish_version_checks_the_function_code_sha256_and_revision() {
    let server = Server::start();
    let client = server.client();
    let code = probe_zip("v1");
    create(
        &client,
        "guarded",
        Runtime::Python312,
        "app.handler",
        code.clone(),
    )
    .await;
    let sha = code_sha256(&code);

    let err = client
        .publish_version()
        .function_name("nope")
        .send()
        .await
        .unwrap_err();
    let (status, code_, message) = service_error(err);
    assert_eq!((status, code_.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(
        message,
        format!("Function not found: {}", function_arn("us-east-1", "nope"))
    );

    // AWS (recorded, test_publish_with_wrong_sha256): 400 InvalidParameterValueException, not
    // 412, naming both hashes.
    let bogus = code_sha256(b"something else");
    let err = client
        .publish_version()
        .function_name("guarded")
        .code_sha256(&bogus)
        .send()
        .await
        .unwrap_err();
    let (status, code_, message) = service_error(err);
    assert_eq!(
        (status, code_.as_str()),
        (400, "InvalidParameterValueException"),
        "{message}"
    );
    assert_eq!(
        message,
        format!(
            "CodeSHA256 ({bogus}) is different from current CodeSHA256 in $LATEST ({sha}). \
             Please try again with the CodeSHA256 in $LATEST."
        )
    );

    let current_rev = client
        .get_function_configuration()
        .function_name("guarded")
        .send()
        .await
        .unwrap()
        .revision_id()
        .unwrap()
        .to_string();
    set_var(&client, "guarded", "changed").await;
    let err = client
        .publish_version()
        .function_name("guarded")
        .revision_id(&current_rev)
        .send()
        .await
        .unwrap_err();
    let (status, code_, message) = service_error(err);
    assert_eq!(
        (status, code_.as_str()),
        (412, "PreconditionFailedException"),
        "{message}"
    );
    assert!(message.contains(REVISION_MISMATCH), "{message}");
    assert_eq!(
        versions_only(&list_versions(&client, "guarded").await),
        ["$LATEST"],
        "a refused publish creates nothing"
    );

    let latest = client
        .get_function_configuration()
        .function_name("guarded")
        .send()
        .await
        .unwrap();
    let v1 = client
        .publish_version()
        .function_name("guarded")
        .code_sha256(&sha)
        .revision_id(latest.revision_id().unwrap())
        .send()
        .await
        .expect("publish with the current CodeSha256 and RevisionId");
    assert_eq!(v1.version(), Some("1"));
    assert_eq!(v1.code_sha256(), Some(sha.as_str()));
}

#[tokio::test]
async fn publish_on_create_and_on_update_code() {
    let server = Server::start();
    let client = server.client();
    let spy = StatusSpy::default();
    let created = client
        .create_function()
        .function_name("eager")
        .runtime(Runtime::Python312)
        .role(ROLE)
        .handler("app.handler")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(probe_zip("v1")))
                .build(),
        )
        .publish(true)
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("create with Publish");
    assert_eq!(spy.status(), 201);
    assert_eq!(
        created.version(),
        Some("1"),
        "CreateFunction(Publish) reports version 1"
    );
    // AWS (recorded, test_publish_version_on_create): the response's FunctionArn stays the
    // unqualified one even though Version is "1".
    assert_eq!(
        created.function_arn(),
        Some(function_arn("us-east-1", "eager").as_str()),
        "AWS answers CreateFunction(Publish=true) with the unqualified FunctionArn"
    );
    wait_active(&client, "eager").await;
    wait_version_active(&client, "eager", "1").await;
    assert_eq!(
        list_versions(&client, "eager").await,
        vec![
            ("$LATEST".to_string(), qualified_arn("eager", "$LATEST")),
            ("1".to_string(), qualified_arn("eager", "1")),
        ]
    );
    assert_eq!(
        publish(&client, "eager").await.version(),
        Some("1"),
        "nothing changed since the publish at create"
    );

    let v2_code = probe_zip("v2");
    let spy = StatusSpy::default();
    let updated = client
        .update_function_code()
        .function_name("eager")
        .zip_file(Blob::new(v2_code.clone()))
        .publish(true)
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("update code with Publish");
    assert_eq!(spy.status(), 200);
    assert_eq!(
        updated.version(),
        Some("2"),
        "the new version's configuration"
    );
    assert_eq!(
        updated.function_arn(),
        Some(qualified_arn("eager", "2").as_str())
    );
    assert_eq!(updated.code_sha256(), Some(code_sha256(&v2_code).as_str()));
    wait_updated(&client, "eager").await;
    wait_version_active(&client, "eager", "2").await;

    let (executed, body) = invoke_version(&client, "eager:1", None, json!({})).await;
    assert_eq!((executed.as_str(), &body["marker"]), ("1", &json!("v1")));
    let (executed, body) = invoke_version(&client, "eager:2", None, json!({})).await;
    assert_eq!((executed.as_str(), &body["marker"]), ("2", &json!("v2")));
    let (executed, body) = invoke_version(&client, "eager", None, json!({})).await;
    assert_eq!(
        (executed.as_str(), &body["marker"]),
        ("$LATEST", &json!("v2"))
    );
}

#[tokio::test]
async fn list_versions_pages_with_marker_and_max_items() {
    let server = Server::start();
    let client = server.client();
    probe_function(&client, "paged", "v", "0").await;
    for i in 1..=4 {
        set_var(&client, "paged", &i.to_string()).await;
        assert_eq!(
            publish(&client, "paged").await.version(),
            Some(i.to_string().as_str())
        );
    }
    let expected = ["$LATEST", "1", "2", "3", "4"];

    for page_size in [1, 2, 3] {
        let mut seen: Vec<(String, String)> = Vec::new();
        let mut marker: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = client
                .list_versions_by_function()
                .function_name("paged")
                .max_items(page_size)
                .set_marker(marker.clone())
                .send()
                .await
                .expect("a page of versions");
            pages += 1;
            assert!(
                !page.versions().is_empty() && page.versions().len() <= page_size as usize,
                "page {pages} of size {page_size}: {} entries",
                page.versions().len()
            );
            seen.extend(page.versions().iter().map(|c| {
                (
                    c.version().unwrap().to_string(),
                    c.function_arn().unwrap().to_string(),
                )
            }));
            match page.next_marker() {
                Some(m) => marker = Some(m.to_string()),
                None => break,
            }
            assert!(pages < 10, "pagination does not end");
        }
        assert_eq!(
            versions_only(&seen),
            expected,
            "MaxItems={page_size}: every version once, $LATEST first, then ascending"
        );
        for (v, arn) in &seen {
            assert_eq!(arn, &qualified_arn("paged", v));
        }
        assert_eq!(pages, expected.len().div_ceil(page_size as usize));
    }

    let err = client
        .list_versions_by_function()
        .function_name("ghost")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(
        message.contains(&function_arn("us-east-1", "ghost")),
        "{message}"
    );
}

#[tokio::test]
async fn get_function_and_configuration_with_a_version_qualifier() {
    let server = Server::start();
    let client = server.client();
    let v1_code = probe_zip("v1");
    create(
        &client,
        "reader",
        Runtime::Python312,
        "app.handler",
        v1_code.clone(),
    )
    .await;
    publish(&client, "reader").await;
    set_code(&client, "reader", "v2").await;

    let f = client
        .get_function()
        .function_name("reader")
        .qualifier("1")
        .send()
        .await
        .expect("get version 1");
    let c = f.configuration().expect("Configuration");
    assert_eq!(c.version(), Some("1"));
    assert_eq!(
        c.function_arn(),
        Some(qualified_arn("reader", "1").as_str())
    );
    assert_eq!(c.code_sha256(), Some(code_sha256(&v1_code).as_str()));
    let location = f.code().and_then(|c| c.location()).expect("Code.Location");
    let download = http_get(location);
    assert_eq!(download.status, 200);
    assert_eq!(
        download.body, v1_code,
        "version 1's Code.Location serves version 1's zip"
    );

    for (name, qualifier) in [("reader", Some("1")), ("reader:1", None)] {
        let c = client
            .get_function_configuration()
            .function_name(name)
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name} {qualifier:?}: {e:?}"));
        assert_eq!(c.version(), Some("1"), "{name} {qualifier:?}");
        assert_eq!(
            c.function_arn(),
            Some(qualified_arn("reader", "1").as_str())
        );
        assert_eq!(c.code_sha256(), Some(code_sha256(&v1_code).as_str()));
    }

    // AWS (recorded): an explicit $LATEST qualifier gives the ARN qualified with $LATEST.
    let latest = client
        .get_function()
        .function_name("reader")
        .qualifier("$LATEST")
        .send()
        .await
        .unwrap();
    let c = latest.configuration().unwrap();
    assert_eq!(c.version(), Some("$LATEST"));
    assert_eq!(
        c.function_arn(),
        Some(qualified_arn("reader", "$LATEST").as_str())
    );
    assert_eq!(
        c.code_sha256(),
        Some(code_sha256(&probe_zip("v2")).as_str())
    );

    let missing = format!("Function not found: {}", qualified_arn("reader", "9"));
    let err = client
        .get_function()
        .function_name("reader")
        .qualifier("9")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(message, missing);
    let err = client
        .get_function_configuration()
        .function_name("reader:9")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(message, missing);
}

#[tokio::test]
async fn a_published_version_never_changes() {
    let server = Server::start_with(PROCESS_LEVEL);
    let client = server.client();
    let v1_code = probe_zip("v1");
    create_with(
        &client,
        "frozen",
        Runtime::Python312,
        "app.handler",
        v1_code.clone(),
        |b| b.environment(env(&[("MY_VAR", "one")])),
    )
    .await;
    let published = publish(&client, "frozen").await;
    assert_eq!(published.version(), Some("1"));
    let (executed, before) = invoke_version(&client, "frozen:1", None, json!({})).await;
    assert_eq!(executed, "1");

    set_var(&client, "frozen", "two").await;
    set_code(&client, "frozen", "v2").await;

    let c = client
        .get_function_configuration()
        .function_name("frozen")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    assert_eq!(c.code_sha256(), Some(code_sha256(&v1_code).as_str()));
    assert_eq!(
        c.environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get("MY_VAR"))
            .map(String::as_str),
        Some("one")
    );
    assert_eq!(
        c.revision_id(),
        published.revision_id(),
        "version 1 did not change"
    );

    let arn1 = qualified_arn("frozen", "1");
    for (name, qualifier) in [
        ("frozen:1", None),
        ("frozen", Some("1")),
        (arn1.as_str(), None),
    ] {
        let (executed, body) = invoke_version(&client, name, qualifier, json!({})).await;
        let what = format!("{name} {qualifier:?}");
        assert_eq!(executed, "1", "X-Amz-Executed-Version of {what}");
        assert_eq!(body["marker"], "v1", "{what} runs version 1's code");
        assert_eq!(body["my_var"], "one", "{what} sees version 1's variables");
        assert_eq!(
            body["env_version"], "1",
            "AWS_LAMBDA_FUNCTION_VERSION of {what}"
        );
        assert_eq!(
            body["context_version"], "1",
            "context.function_version of {what}"
        );
        assert_eq!(body["invoked_arn"], arn1.as_str(), "invoked ARN of {what}");
        assert!(
            body["log_stream"]
                .as_str()
                .unwrap_or_default()
                .contains("/[1]"),
            "the log stream names version 1: {}",
            body["log_stream"]
        );
        assert_eq!(
            body["pid"], before["pid"],
            "version 1's environment keeps serving it while $LATEST changes"
        );
    }

    let (executed, body) = invoke_version(&client, "frozen", None, json!({})).await;
    assert_eq!(executed, "$LATEST");
    assert_eq!(body["marker"], "v2");
    assert_eq!(body["my_var"], "two");
    assert_eq!(body["env_version"], "$LATEST");
    assert_ne!(body["pid"], before["pid"]);
}

#[tokio::test]
async fn deleting_versions_one_at_a_time_and_all_at_once() {
    let server = Server::start();
    let client = server.client();
    probe_function(&client, "pruned", "v1", "one").await;
    publish(&client, "pruned").await;
    set_var(&client, "pruned", "two").await;
    assert_eq!(publish(&client, "pruned").await.version(), Some("2"));
    invoke_version(&client, "pruned:1", None, json!({})).await;

    // $LATEST cannot be deleted on its own.
    let err = client
        .delete_function()
        .function_name("pruned")
        .qualifier("$LATEST")
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
        "$LATEST version cannot be deleted without deleting the function."
    );

    // Nor a version an alias points to.
    client
        .create_alias()
        .function_name("pruned")
        .name("live")
        .function_version("1")
        .send()
        .await
        .expect("create alias");
    let err = client
        .delete_function()
        .function_name("pruned")
        .qualifier("1")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (409, "ResourceConflictException"));
    assert!(
        message.contains("live"),
        "the message names the alias: {message}"
    );
    assert_eq!(
        message,
        "Unable to delete version because the following aliases reference it: [live]"
    );
    assert_eq!(
        versions_only(&list_versions(&client, "pruned").await),
        ["$LATEST", "1", "2"]
    );
    client
        .delete_alias()
        .function_name("pruned")
        .name("live")
        .send()
        .await
        .expect("delete alias");

    let spy = StatusSpy::default();
    client
        .delete_function()
        .function_name("pruned")
        .qualifier("1")
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("delete version 1");
    assert_eq!(
        spy.status(),
        204,
        "DeleteFunction answers 204 (AWS recorded)"
    );
    assert_eq!(
        versions_only(&list_versions(&client, "pruned").await),
        ["$LATEST", "2"]
    );
    let missing = format!("Function not found: {}", qualified_arn("pruned", "1"));
    let err = client
        .invoke()
        .function_name("pruned:1")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(message, missing);
    let err = client
        .get_function()
        .function_name("pruned")
        .qualifier("1")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(message, missing);
    // AWS (recorded, test_delete_on_nonexisting_version): deleting a version that does not
    // exist, of a function that does, succeeds.
    client
        .delete_function()
        .function_name("pruned")
        .qualifier("1")
        .send()
        .await
        .expect("deleting a missing version of an existing function is idempotent");
    let (executed, _) = invoke_version(&client, "pruned:2", None, json!({})).await;
    assert_eq!(executed, "2", "version 2 survives");

    // The qualified-name form deletes one version too; numbers are never reused.
    client
        .delete_function()
        .function_name("pruned:2")
        .send()
        .await
        .expect("delete pruned:2");
    assert_eq!(
        versions_only(&list_versions(&client, "pruned").await),
        ["$LATEST"]
    );
    client
        .get_function()
        .function_name("pruned")
        .send()
        .await
        .expect("$LATEST is still there");
    set_var(&client, "pruned", "three").await;
    let v3 = publish(&client, "pruned").await;
    assert_eq!(
        v3.version(),
        Some("3"),
        "version numbers are never reused, even after deletes"
    );

    // Without a qualifier everything goes: versions and aliases.
    client
        .create_alias()
        .function_name("pruned")
        .name("stay")
        .function_version("3")
        .send()
        .await
        .expect("create alias");
    let spy = StatusSpy::default();
    client
        .delete_function()
        .function_name("pruned")
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("delete the function");
    assert_eq!(spy.status(), 204);
    let err = client
        .delete_function()
        .function_name("pruned")
        .qualifier("3")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(
        message,
        format!(
            "Function not found: {}",
            function_arn("us-east-1", "pruned")
        ),
        "AWS names the unqualified function when the function is gone"
    );

    probe_function(&client, "pruned", "again", "x").await;
    assert_eq!(
        list_versions(&client, "pruned").await,
        vec![("$LATEST".to_string(), qualified_arn("pruned", "$LATEST"))],
        "a re-created function has no versions"
    );
    assert!(
        client
            .list_aliases()
            .function_name("pruned")
            .send()
            .await
            .unwrap()
            .aliases()
            .is_empty(),
        "nor aliases"
    );
    let err = client
        .get_alias()
        .function_name("pruned")
        .name("stay")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(
        message,
        format!("Cannot find alias arn: {}", qualified_arn("pruned", "stay"))
    );
    assert_eq!(
        publish(&client, "pruned").await.version(),
        Some("1"),
        "a re-created function starts at version 1 again"
    );
    let (executed, body) = invoke_version(&client, "pruned:1", None, json!({})).await;
    assert_eq!(executed, "1");
    assert_eq!(
        body["marker"], "again",
        "the new function's code, not the old version 1"
    );
}

#[tokio::test]
async fn an_in_flight_invoke_finishes_on_the_code_it_started_with() {
    let server = Server::start_with(PROCESS_LEVEL);
    let client = server.client();
    create_with(
        &client,
        "inflight",
        Runtime::Python312,
        "app.handler",
        probe_zip("v1"),
        |b| b.timeout(60),
    )
    .await;
    let gate = tempfile::tempdir().unwrap();
    let started = gate.path().join("old.started");
    let running = {
        let client = client.clone();
        let event = json!({"action": "gate", "dir": gate.path(), "tag": "old", "max": 50});
        tokio::spawn(async move { invoke_version(&client, "inflight", None, event).await })
    };
    eventually(
        Duration::from_secs(30),
        "the first invoke to be running",
        || {
            let started = started.clone();
            async move { started.exists().then_some(()) }
        },
    )
    .await;

    set_code(&client, "inflight", "v2").await;
    let (executed, body) = invoke_version(&client, "inflight", None, json!({})).await;
    assert_eq!(
        (executed.as_str(), &body["marker"]),
        ("$LATEST", &json!("v2"))
    );

    std::fs::write(gate.path().join("release"), b"go").unwrap();
    let (executed, old) = running.await.unwrap();
    assert_eq!(executed, "$LATEST");
    assert_eq!(old["released"], true);
    assert_eq!(
        old["marker"], "v1",
        "the invoke that was running during the update finishes on the old code"
    );
    let old_pid = old["pid"].as_u64().unwrap() as u32;
    eventually(
        Duration::from_secs(10),
        "the old revision's environment to be drained once idle",
        || async { (!alive(old_pid)).then_some(()) },
    )
    .await;
    let (_, body) = invoke_version(&client, "inflight", None, json!({})).await;
    assert_eq!(body["marker"], "v2");
}

#[tokio::test]
async fn an_update_stops_the_old_revisions_idle_environments_before_the_next_invoke() {
    let server = Server::start_with(PROCESS_LEVEL);
    let client = server.client();
    create_with(
        &client,
        "retired",
        Runtime::Python312,
        "app.handler",
        probe_zip("v1"),
        |b| b,
    )
    .await;
    let published = publish(&client, "retired").await;
    assert_eq!(published.version(), Some("1"));
    let (_, latest) = invoke_version(&client, "retired", None, json!({})).await;
    let (_, v1) = invoke_version(&client, "retired:1", None, json!({})).await;
    let latest_pid = latest["pid"].as_u64().unwrap() as u32;
    let v1_pid = v1["pid"].as_u64().unwrap() as u32;
    assert_ne!(latest_pid, v1_pid);

    // The update is applied: $LATEST's idle environment is stopped without waiting for the
    // next invoke; version 1 did not change, so its environment stays warm.
    set_code(&client, "retired", "v2").await;
    eventually(
        Duration::from_secs(10),
        "the old revision's idle environment to be stopped",
        || async { (!alive(latest_pid)).then_some(()) },
    )
    .await;
    assert!(alive(v1_pid), "version 1's environment was stopped too");
    let (_, body) = invoke_version(&client, "retired", None, json!({})).await;
    assert_eq!(body["marker"], "v2");
    let (_, body) = invoke_version(&client, "retired:1", None, json!({})).await;
    assert_eq!(
        (&body["marker"], body["pid"].as_u64()),
        (&json!("v1"), Some(v1_pid as u64))
    );
}
