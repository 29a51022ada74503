//! The call sequence Terraform's `aws_lambda_function` (with `publish = true`) and
//! `aws_lambda_alias` make, in order, through the real client: create, read back, update
//! configuration then code (waiting for each), publish, move an alias, set reserved
//! concurrency, and destroy.

mod common;

use std::time::Duration;

use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use aws_sdk_lambda::Client;
use common::*;
use serde_json::json;

/// Terraform's read of a function: GetFunction (Configuration, Code and Tags non-null),
/// ListVersionsByFunction (the last item of the last page is the newest version) and
/// GetFunctionCodeSigningConfig.
async fn terraform_read(client: &Client, name: &str) -> (String, String) {
    let got = client
        .get_function()
        .function_name(name)
        .send()
        .await
        .unwrap();
    assert!(got.configuration().is_some() && got.code().is_some());
    assert!(got.code().unwrap().location().is_some());
    let mut marker = None;
    let mut last = None;
    loop {
        let page = client
            .list_versions_by_function()
            .function_name(name)
            .set_marker(marker)
            .max_items(2)
            .send()
            .await
            .unwrap();
        if let Some(v) = page.versions().last() {
            last = v.version().map(str::to_string);
        }
        marker = page.next_marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    let csc = client
        .get_function_code_signing_config()
        .function_name(name)
        .send()
        .await
        .unwrap();
    assert_eq!(csc.code_signing_config_arn(), "");
    (
        got.configuration()
            .unwrap()
            .revision_id()
            .unwrap()
            .to_string(),
        last.unwrap(),
    )
}

#[tokio::test]
async fn terraform_apply_update_and_destroy() {
    let server = Server::start();
    let client = server.client();
    let code = |v: &str| python_zip(&format!("def handler(e, c):\n    return '{v}'\n"));

    // apply: create with publish, wait for it to exist and be Active, read it back.
    client
        .create_function()
        .function_name("tf")
        .runtime(Runtime::Python312)
        .role(ROLE)
        .handler("app.handler")
        .publish(true)
        .tags("managed-by", "terraform")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(code("v1")))
                .build(),
        )
        .send()
        .await
        .unwrap();
    client
        .wait_until_function_exists()
        .function_name("tf")
        .wait(Duration::from_secs(30))
        .await
        .unwrap();
    wait_active(&client, "tf").await;
    client
        .put_function_concurrency()
        .function_name("tf")
        .reserved_concurrent_executions(5)
        .send()
        .await
        .unwrap();
    let (_, newest) = terraform_read(&client, "tf").await;
    assert_eq!(newest, "1");
    client
        .create_alias()
        .function_name("tf")
        .name("live")
        .function_version(&newest)
        .send()
        .await
        .unwrap();

    // update: configuration, then code with publish, each waited for.
    client
        .update_function_configuration()
        .function_name("tf")
        .memory_size(256)
        .environment(env(&[("STAGE", "prod")]))
        .send()
        .await
        .unwrap();
    wait_updated(&client, "tf").await;
    let updated = client
        .update_function_code()
        .function_name("tf")
        .zip_file(Blob::new(code("v2")))
        .publish(true)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.version(), Some("2"));
    wait_updated(&client, "tf").await;
    client
        .wait_until_published_version_active()
        .function_name("tf")
        .qualifier("2")
        .wait(Duration::from_secs(30))
        .await
        .unwrap();
    let (_, newest) = terraform_read(&client, "tf").await;
    assert_eq!(newest, "2");
    let (before, _, _) = call(&client, "tf:live", json!({})).await;
    assert_eq!(before, "v1", "the alias still points at version 1");
    client
        .update_alias()
        .function_name("tf")
        .name("live")
        .function_version(&newest)
        .send()
        .await
        .unwrap();
    let (after, _, _) = call(&client, "tf:live", json!({})).await;
    assert_eq!(after, "v2");
    let got = client
        .get_function()
        .function_name("tf")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        Some(5)
    );
    assert_eq!(
        got.tags()
            .and_then(|t| t.get("managed-by"))
            .map(String::as_str),
        Some("terraform")
    );

    // destroy: alias, concurrency, function; then GetFunction until 404.
    client
        .delete_alias()
        .function_name("tf")
        .name("live")
        .send()
        .await
        .unwrap();
    client
        .delete_function_concurrency()
        .function_name("tf")
        .send()
        .await
        .unwrap();
    client
        .delete_function()
        .function_name("tf")
        .send()
        .await
        .unwrap();
    let e = client
        .get_function()
        .function_name("tf")
        .send()
        .await
        .unwrap_err();
    let (status, code, _) = service_error(e);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
}
