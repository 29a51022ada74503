//! Provisioned concurrency: environments started ahead of time for a version or alias, kept
//! warm past the idle timeout, serving invokes without a cold start.

mod common;

use std::time::Duration;

use aws_sdk_lambda::types::{ProvisionedConcurrencyStatusEnum, Runtime};
use aws_sdk_lambda::Client;
use common::*;
use serde_json::json;

const PROBE: &str = "import os, time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return {'pid': os.getpid(), 'init': os.environ['AWS_LAMBDA_INITIALIZATION_TYPE'], 'version': os.environ['AWS_LAMBDA_FUNCTION_VERSION']}\n";

async fn ready(client: &Client, name: &str, qualifier: &str) {
    eventually(
        Duration::from_secs(30),
        "provisioned concurrency READY",
        || async {
            let got = client
                .get_provisioned_concurrency_config()
                .function_name(name)
                .qualifier(qualifier)
                .send()
                .await
                .ok()?;
            assert_ne!(
                got.status(),
                Some(&ProvisionedConcurrencyStatusEnum::Failed),
                "{:?}",
                got.status_reason()
            );
            (got.status() == Some(&ProvisionedConcurrencyStatusEnum::Ready)).then_some(got)
        },
    )
    .await;
}

#[tokio::test]
async fn an_alias_with_provisioned_concurrency_serves_warm() {
    let server = Server::start_with(&["--idle-timeout", "0.3", "--isolation", "process"]);
    let client = server.client();
    create(
        &client,
        "pc",
        Runtime::Python312,
        "app.handler",
        python_zip(PROBE),
    )
    .await;
    create(
        &client,
        "other",
        Runtime::Python312,
        "app.handler",
        python_zip(PROBE),
    )
    .await;
    client
        .publish_version()
        .function_name("pc")
        .send()
        .await
        .unwrap();
    client
        .create_alias()
        .function_name("pc")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap();
    let put = client
        .put_provisioned_concurrency_config()
        .function_name("pc")
        .qualifier("live")
        .provisioned_concurrent_executions(2)
        .send()
        .await
        .unwrap();
    assert_eq!(put.requested_provisioned_concurrent_executions(), Some(2));
    assert_eq!(
        put.status(),
        Some(&ProvisionedConcurrencyStatusEnum::InProgress)
    );
    ready(&client, "pc", "live").await;
    let got = client
        .get_provisioned_concurrency_config()
        .function_name("pc")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    assert_eq!(got.allocated_provisioned_concurrent_executions(), Some(2));
    assert_eq!(got.available_provisioned_concurrent_executions(), Some(2));

    // Both concurrent invokes land on provisioned environments: no cold start.
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            // Each holds its environment long enough for the other to need the second one.
            tokio::spawn(async move { call(&client, "pc:live", json!({"sleep": 1})).await })
        })
        .collect();
    let mut pids = Vec::new();
    for c in calls {
        let (body, err, log) = c.await.unwrap();
        assert!(err.is_none(), "{body}");
        assert_eq!(body["init"], "provisioned-concurrency");
        assert_eq!(body["version"], "1");
        assert!(!log.contains("Init Duration"), "no cold start: {log}");
        pids.push(body["pid"].as_u64().unwrap() as u32);
    }
    assert_ne!(pids[0], pids[1]);

    // An ordinary environment is reaped after the idle timeout; the provisioned ones are not.
    let (other, _, _) = call(&client, "other", json!({})).await;
    let other_pid = other["pid"].as_u64().unwrap() as u32;
    eventually(
        Duration::from_secs(10),
        "the on-demand environment to be reaped",
        || async { (!alive(other_pid)).then_some(()) },
    )
    .await;
    assert!(
        pids.iter().all(|p| alive(*p)),
        "provisioned environments are kept"
    );

    let list = client
        .list_provisioned_concurrency_configs()
        .function_name("pc")
        .send()
        .await
        .unwrap();
    let items = list.provisioned_concurrency_configs();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].function_arn(),
        Some("arn:aws:lambda:us-east-1:000000000000:function:pc:live")
    );

    // Removing the configuration makes them ordinary environments, reaped when idle.
    client
        .delete_provisioned_concurrency_config()
        .function_name("pc")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    for pid in pids {
        eventually(
            Duration::from_secs(10),
            "a released environment to be reaped",
            || async { (!alive(pid)).then_some(()) },
        )
        .await;
    }
    let e = client
        .get_provisioned_concurrency_config()
        .function_name("pc")
        .qualifier("live")
        .send()
        .await
        .unwrap_err();
    let (status, code, msg) = service_error(e);
    assert_eq!(
        (status, code.as_str()),
        (404, "ProvisionedConcurrencyConfigNotFoundException")
    );
    assert_eq!(
        msg,
        "No Provisioned Concurrency Config found for this function"
    );
}

#[tokio::test]
async fn provisioned_concurrency_refuses_latest_unknown_qualifiers_and_over_reservation() {
    let mut server = Server::start();
    let client = server.client();
    create(
        &client,
        "pcx",
        Runtime::Python312,
        "app.handler",
        python_zip(PROBE),
    )
    .await;
    client
        .publish_version()
        .function_name("pcx")
        .send()
        .await
        .unwrap();
    let put = |q: &str, n: i32| {
        client
            .put_provisioned_concurrency_config()
            .function_name("pcx")
            .qualifier(q)
            .provisioned_concurrent_executions(n)
            .send()
    };
    let (status, code, msg) = service_error(put("$LATEST", 1).await.unwrap_err());
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert!(msg.contains("unpublished function versions"), "{msg}");
    let (status, code, msg) = service_error(put("9", 1).await.unwrap_err());
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(msg.ends_with("function:pcx:9"), "{msg}");
    client
        .put_function_concurrency()
        .function_name("pcx")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    let (status, code, msg) = service_error(put("1", 2).await.unwrap_err());
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert!(msg.contains("reservedConcurrentExecution"), "{msg}");
    put("1", 1).await.unwrap();
    ready(&client, "pcx", "1").await;
    // A restarted server provisions the stored configuration again.
    server.restart();
    let client = server.client();
    ready(&client, "pcx", "1").await;
    let (body, _, log) = call(&client, "pcx:1", json!({})).await;
    assert_eq!(body["init"], "provisioned-concurrency");
    assert!(!log.contains("Init Duration"));
}
