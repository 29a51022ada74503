//! Aliases end to end: CreateAlias / GetAlias / UpdateAlias / DeleteAlias / ListAliases, the
//! routing-configuration rules, and invoking through an alias, including weighted routing
//! measured over many invokes. A real `lamina serve` driven by the real `aws-sdk-lambda`; where
//! AWS's recorded behaviour is known (LocalStack's AWS-validated snapshots of
//! `test_lambda_api.py`), the assertion follows it and says so.

mod common;

use std::collections::{BTreeSet, HashMap};

use aws_sdk_lambda::types::{AliasRoutingConfiguration, Runtime};
use aws_sdk_lambda::Client;
use common::*;
use serde_json::json;

const REVISION_MISMATCH: &str = "The Revision Id provided does not match the latest Revision Id";

/// A function with versions 1 (`MY_VAR=one`, marker `v1`) and 2 (`MY_VAR=two`, marker `v2`);
/// `$LATEST` equals version 2.
async fn two_versions(client: &Client, name: &str) {
    create_with(
        client,
        name,
        Runtime::Python312,
        "app.handler",
        probe_zip("v1"),
        |b| b.environment(env(&[("MY_VAR", "one")])),
    )
    .await;
    let v1 = client
        .publish_version()
        .function_name(name)
        .send()
        .await
        .expect("publish 1");
    assert_eq!(v1.version(), Some("1"));
    client
        .update_function_code()
        .function_name(name)
        .zip_file(aws_sdk_lambda::primitives::Blob::new(probe_zip("v2")))
        .send()
        .await
        .expect("update code");
    wait_updated(client, name).await;
    client
        .update_function_configuration()
        .function_name(name)
        .environment(env(&[("MY_VAR", "two")]))
        .send()
        .await
        .expect("update configuration");
    wait_updated(client, name).await;
    let v2 = client
        .publish_version()
        .function_name(name)
        .send()
        .await
        .expect("publish 2");
    assert_eq!(v2.version(), Some("2"));
}

fn weights(pairs: &[(&str, f64)]) -> AliasRoutingConfiguration {
    AliasRoutingConfiguration::builder()
        .set_additional_version_weights(Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<HashMap<_, _>>(),
        ))
        .build()
}

fn routing_of(r: Option<&AliasRoutingConfiguration>) -> HashMap<String, f64> {
    r.and_then(|r| r.additional_version_weights())
        .cloned()
        .unwrap_or_default()
}

async fn alias_names(client: &Client, name: &str, version: Option<&str>) -> BTreeSet<String> {
    let all: Vec<_> = client
        .list_aliases()
        .function_name(name)
        .set_function_version(version.map(str::to_string))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("list aliases");
    let names: BTreeSet<String> = all
        .iter()
        .map(|a| a.name().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names.len(), all.len(), "no alias listed twice: {all:?}");
    names
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn create_get_update_and_delete_an_alias() {
    let server = Server::start();
    let client = server.client();
    two_versions(&client, "aliased").await;
    let arn = qualified_arn("aliased", "live");

    let spy = StatusSpy::default();
    let created = client
        .create_alias()
        .function_name("aliased")
        .name("live")
        .function_version("1")
        .description("production")
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("create alias");
    assert_eq!(spy.status(), 201, "CreateAlias answers 201 Created");
    assert_eq!(created.alias_arn(), Some(arn.as_str()));
    assert_eq!(created.name(), Some("live"));
    assert_eq!(created.function_version(), Some("1"));
    assert_eq!(created.description(), Some("production"));
    assert!(routing_of(created.routing_config()).is_empty());
    let rev0 = created.revision_id().expect("RevisionId").to_string();
    assert!(!rev0.is_empty());

    let got = client
        .get_alias()
        .function_name("aliased")
        .name("live")
        .send()
        .await
        .expect("get alias");
    assert_eq!(got.alias_arn(), Some(arn.as_str()));
    assert_eq!(got.name(), Some("live"));
    assert_eq!(got.function_version(), Some("1"));
    assert_eq!(got.description(), Some("production"));
    assert_eq!(got.revision_id(), Some(rev0.as_str()));

    // The alias ARN works as a function name for reads too (AWS recorded: the configuration of
    // the alias's version, with the alias ARN).
    let f = client
        .get_function()
        .function_name("aliased")
        .qualifier("live")
        .send()
        .await
        .expect("get function through the alias");
    let c = f.configuration().unwrap();
    assert_eq!(c.version(), Some("1"));
    assert_eq!(c.function_arn(), Some(arn.as_str()));

    let err = client
        .create_alias()
        .function_name("aliased")
        .name("live")
        .function_version("2")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (409, "ResourceConflictException"));
    assert_eq!(message, format!("Alias already exists: {arn}"));

    let spy = StatusSpy::default();
    let moved = client
        .update_alias()
        .function_name("aliased")
        .name("live")
        .function_version("2")
        .description("moved")
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("update alias");
    assert_eq!(spy.status(), 200);
    assert_eq!(moved.function_version(), Some("2"));
    assert_eq!(moved.description(), Some("moved"));
    assert_eq!(moved.alias_arn(), Some(arn.as_str()));
    let rev1 = moved.revision_id().unwrap().to_string();
    assert_ne!(rev1, rev0, "an update changes the alias's RevisionId");

    let err = client
        .update_alias()
        .function_name("aliased")
        .name("live")
        .function_version("1")
        .revision_id(&rev0)
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (412, "PreconditionFailedException")
    );
    assert!(message.contains(REVISION_MISMATCH), "{message}");
    let unchanged = client
        .get_alias()
        .function_name("aliased")
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(
        unchanged.function_version(),
        Some("2"),
        "a refused update changes nothing"
    );
    assert_eq!(unchanged.revision_id(), Some(rev1.as_str()));

    let described = client
        .update_alias()
        .function_name("aliased")
        .name("live")
        .description("only the description")
        .revision_id(&rev1)
        .send()
        .await
        .expect("update with the current RevisionId");
    assert_eq!(
        described.function_version(),
        Some("2"),
        "fields left out keep their values"
    );
    assert_eq!(described.description(), Some("only the description"));
    assert_ne!(described.revision_id(), Some(rev1.as_str()));

    // AWS (recorded, test_non_existent_alias_update).
    let err = client
        .update_alias()
        .function_name("aliased")
        .name("nope")
        .function_version("1")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(
        message,
        format!("Alias not found: {}", qualified_arn("aliased", "nope"))
    );

    let spy = StatusSpy::default();
    client
        .delete_alias()
        .function_name("aliased")
        .name("live")
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("delete alias");
    assert_eq!(spy.status(), 204, "DeleteAlias answers 204");
    let err = client
        .get_alias()
        .function_name("aliased")
        .name("live")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(message, format!("Cannot find alias arn: {arn}"));
    // AWS (recorded, test_non_existent_alias_deletion): deleting a missing alias succeeds.
    client
        .delete_alias()
        .function_name("aliased")
        .name("live")
        .send()
        .await
        .expect("deleting a missing alias is idempotent");
    assert!(alias_names(&client, "aliased", None).await.is_empty());
    // The versions are untouched.
    let (executed, _) = invoke_version(&client, "aliased:1", None, json!({})).await;
    assert_eq!(executed, "1");
}

#[tokio::test]
async fn create_alias_refuses_unknown_targets_and_bad_names() {
    let server = Server::start();
    let client = server.client();
    two_versions(&client, "strict").await;

    let err = client
        .create_alias()
        .function_name("ghost")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert!(
        message.starts_with(&format!(
            "Function not found: {}",
            function_arn("us-east-1", "ghost")
        )),
        "{message}"
    );

    let err = client
        .create_alias()
        .function_name("strict")
        .name("live")
        .function_version("10")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(
        message,
        format!("Function not found: {}", qualified_arn("strict", "10"))
    );

    let pattern = "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)";
    for bad in ["123", "bad.name", "has space", "semi;colon"] {
        let err = client
            .create_alias()
            .function_name("strict")
            .name(bad)
            .function_version("1")
            .send()
            .await
            .unwrap_err();
        let (status, code, message) = service_error(err);
        assert_eq!(
            (status, code.as_str()),
            (400, "ValidationException"),
            "{bad}: {message}"
        );
        assert_eq!(
            message,
            format!(
                "1 validation error detected: Value '{bad}' at 'name' failed to satisfy \
                 constraint: {pattern}"
            )
        );
    }
    let long = "a".repeat(129);
    let err = client
        .create_alias()
        .function_name("strict")
        .name(&long)
        .function_version("1")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    assert!(
        message.contains("at 'name' failed to satisfy constraint: Member must have length less than or equal to 128"),
        "{message}"
    );
    assert!(
        alias_names(&client, "strict", None).await.is_empty(),
        "refused creates leave nothing behind"
    );

    // Names that mix digits and letters, dashes and underscores are fine.
    for good in ["v1", "2024-blue_green", &"b".repeat(128)] {
        client
            .create_alias()
            .function_name("strict")
            .name(good)
            .function_version("$LATEST")
            .send()
            .await
            .unwrap_or_else(|e| panic!("alias {good}: {e:?}"));
    }
    assert_eq!(alias_names(&client, "strict", None).await.len(), 3);
}

#[tokio::test]
async fn routing_configuration_follows_aws_rules() {
    let server = Server::start();
    let client = server.client();
    two_versions(&client, "routed").await;
    client
        .update_function_configuration()
        .function_name("routed")
        .environment(env(&[("MY_VAR", "three")]))
        .send()
        .await
        .unwrap();
    wait_updated(&client, "routed").await;
    let v3 = client
        .publish_version()
        .function_name("routed")
        .send()
        .await
        .unwrap();
    assert_eq!(v3.version(), Some("3"));

    let create = |version: &'static str, routing: AliasRoutingConfiguration| {
        let client = client.clone();
        async move {
            client
                .create_alias()
                .function_name("routed")
                .name("canary")
                .function_version(version)
                .routing_config(routing)
                .send()
                .await
        }
    };

    // Weights outside [0, 1] (AWS recorded: ValidationException on the map value).
    for w in [2.0, 1.5, -1.0, -0.1] {
        let err = create("1", weights(&[("2", w)])).await.unwrap_err();
        let (status, code, message) = service_error(err);
        assert_eq!(
            (status, code.as_str()),
            (400, "ValidationException"),
            "weight {w}: {message}"
        );
        assert!(
            message.starts_with("1 validation error detected: Value '{2="),
            "{message}"
        );
        assert!(
            message.contains(
                "at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map \
                 value must satisfy constraint: [Member must have value less than or equal to \
                 1.0, Member must have value greater than or equal to 0.0"
            ),
            "weight {w}: {message}"
        );
    }

    let err = create("1", weights(&[("2", 0.2), ("3", 0.3)]))
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert_eq!(
        message,
        "Number of items in AdditionalVersionWeights cannot be greater than 1"
    );

    let err = create("1", weights(&[("1", 0.5)])).await.unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert_eq!(
        message,
        "Invalid function version 1. Function version 1 is already included in routing \
         configuration."
    );

    let err = create("$LATEST", weights(&[("1", 0.5)])).await.unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert_eq!(
        message,
        "$LATEST is not supported for an alias pointing to more than 1 version"
    );

    // AWS (recorded, routing_config_exc_version_latest): a $LATEST key fails the key pattern
    // `[0-9]+`, which is a 400 ValidationException, not InvalidParameterValueException.
    let err = create("1", weights(&[("$LATEST", 0.5)])).await.unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "ValidationException"),
        "{message}"
    );
    assert!(
        message.contains("Value '{$LATEST=0.5}' at 'routingConfig.additionalVersionWeights'"),
        "{message}"
    );

    let err = create("1", weights(&[("10", 0.5)])).await.unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(
        message,
        format!("Function not found: {}", qualified_arn("routed", "10"))
    );

    assert!(
        alias_names(&client, "routed", None).await.is_empty(),
        "no refused create left an alias"
    );

    // An empty map is no routing at all (AWS recorded: accepted).
    let empty = client
        .create_alias()
        .function_name("routed")
        .name("plain")
        .function_version("1")
        .routing_config(weights(&[]))
        .send()
        .await
        .expect("an empty routing configuration");
    assert!(routing_of(empty.routing_config()).is_empty());

    let ok = create("1", weights(&[("2", 0.25)]))
        .await
        .expect("a valid routing configuration");
    assert_eq!(
        routing_of(ok.routing_config()),
        HashMap::from([("2".to_string(), 0.25)])
    );
    let got = client
        .get_alias()
        .function_name("routed")
        .name("canary")
        .send()
        .await
        .unwrap();
    assert_eq!(
        routing_of(got.routing_config()),
        HashMap::from([("2".to_string(), 0.25)])
    );

    // The same rules on update, and a refused update changes nothing.
    let update = |version: Option<&'static str>, routing: AliasRoutingConfiguration| {
        let client = client.clone();
        async move {
            client
                .update_alias()
                .function_name("routed")
                .name("canary")
                .set_function_version(version.map(str::to_string))
                .routing_config(routing)
                .send()
                .await
        }
    };
    let err = update(None, weights(&[("3", 1.5)])).await.unwrap_err();
    let (status, code, _) = service_error(err);
    assert_eq!((status, code.as_str()), (400, "ValidationException"));
    let err = update(None, weights(&[("1", 0.5)])).await.unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException"),
        "{message}"
    );
    let err = update(Some("$LATEST"), weights(&[("2", 0.5)]))
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    assert_eq!(
        message,
        "$LATEST is not supported for an alias pointing to more than 1 version"
    );
    let err = update(None, weights(&[("2", 0.1), ("3", 0.1)]))
        .await
        .unwrap_err();
    let (status, code, _) = service_error(err);
    assert_eq!(
        (status, code.as_str()),
        (400, "InvalidParameterValueException")
    );
    let err = update(None, weights(&[("7", 0.1)])).await.unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(
        message,
        format!("Function not found: {}", qualified_arn("routed", "7"))
    );
    let got = client
        .get_alias()
        .function_name("routed")
        .name("canary")
        .send()
        .await
        .unwrap();
    assert_eq!(got.function_version(), Some("1"));
    assert_eq!(
        routing_of(got.routing_config()),
        HashMap::from([("2".to_string(), 0.25)])
    );

    let moved = update(None, weights(&[("3", 0.5)]))
        .await
        .expect("re-weight");
    assert_eq!(
        routing_of(moved.routing_config()),
        HashMap::from([("3".to_string(), 0.5)])
    );

    // `AdditionalVersionWeights: {}` clears the routing (AWS recorded: no RoutingConfig after).
    let cleared = update(None, weights(&[])).await.expect("clear routing");
    assert!(
        routing_of(cleared.routing_config()).is_empty(),
        "{:?}",
        cleared.routing_config()
    );
    let got = client
        .get_alias()
        .function_name("routed")
        .name("canary")
        .send()
        .await
        .unwrap();
    assert!(routing_of(got.routing_config()).is_empty());
    assert_eq!(got.function_version(), Some("1"));
    for _ in 0..20 {
        let (executed, body) = invoke_version(&client, "routed:canary", None, json!({})).await;
        assert_eq!(
            executed, "1",
            "without routing every invoke runs the main version"
        );
        assert_eq!(body["env_version"], "1");
    }
}

#[tokio::test]
async fn list_aliases_filters_by_version_and_pages() {
    let server = Server::start();
    let client = server.client();
    two_versions(&client, "listed").await;
    for (alias, version, routing) in [
        ("one-a", "1", None),
        ("one-b", "1", Some(weights(&[("2", 0.5)]))),
        ("two", "2", None),
        ("latest", "$LATEST", None),
    ] {
        client
            .create_alias()
            .function_name("listed")
            .name(alias)
            .function_version(version)
            .set_routing_config(routing)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{alias}: {e:?}"));
    }

    let listed = client
        .list_aliases()
        .function_name("listed")
        .send()
        .await
        .expect("list aliases");
    assert_eq!(listed.aliases().len(), 4);
    for a in listed.aliases() {
        let name = a.name().unwrap();
        assert_eq!(a.alias_arn(), Some(qualified_arn("listed", name).as_str()));
        assert!(a.revision_id().is_some_and(|r| !r.is_empty()), "{name}");
        if name == "one-b" {
            assert_eq!(
                routing_of(a.routing_config()),
                HashMap::from([("2".to_string(), 0.5)])
            );
        }
    }
    assert_eq!(
        alias_names(&client, "listed", None).await,
        set(&["latest", "one-a", "one-b", "two"])
    );
    assert_eq!(
        alias_names(&client, "listed", Some("1")).await,
        set(&["one-a", "one-b"]),
        "FunctionVersion=1: the aliases whose main version is 1 (AWS recorded)"
    );
    assert_eq!(
        alias_names(&client, "listed", Some("$LATEST")).await,
        set(&["latest"])
    );

    for page_size in [1, 3] {
        let mut seen = Vec::new();
        let mut marker: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = client
                .list_aliases()
                .function_name("listed")
                .max_items(page_size)
                .set_marker(marker.clone())
                .send()
                .await
                .expect("a page of aliases");
            pages += 1;
            assert!(
                !page.aliases().is_empty() && page.aliases().len() <= page_size as usize,
                "page {pages} of size {page_size}: {}",
                page.aliases().len()
            );
            seen.extend(page.aliases().iter().map(|a| a.name().unwrap().to_string()));
            match page.next_marker() {
                Some(m) => marker = Some(m.to_string()),
                None => break,
            }
            assert!(pages < 10, "pagination does not end");
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "MaxItems={page_size}: {seen:?}");
        assert_eq!(unique, set(&["latest", "one-a", "one-b", "two"]));
        assert_eq!(pages, 4usize.div_ceil(page_size as usize));
    }

    let err = client
        .list_aliases()
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
async fn invoking_an_alias_runs_its_version_and_reports_the_alias_arn() {
    let server = Server::start();
    let client = server.client();
    two_versions(&client, "through").await;
    for (alias, version) in [("live", "1"), ("edge", "$LATEST")] {
        client
            .create_alias()
            .function_name("through")
            .name(alias)
            .function_version(version)
            .send()
            .await
            .unwrap();
    }
    let live = qualified_arn("through", "live");

    for (name, qualifier) in [
        ("through:live", None),
        ("through", Some("live")),
        (live.as_str(), None),
        ("000000000000:function:through:live", None),
    ] {
        let what = format!("{name} {qualifier:?}");
        let (executed, body) = invoke_version(&client, name, qualifier, json!({})).await;
        assert_eq!(executed, "1", "X-Amz-Executed-Version of {what}");
        assert_eq!(body["marker"], "v1", "{what} runs version 1's code");
        assert_eq!(body["my_var"], "one", "{what}");
        assert_eq!(
            body["env_version"], "1",
            "AWS_LAMBDA_FUNCTION_VERSION of {what}"
        );
        assert_eq!(
            body["context_version"], "1",
            "context.function_version of {what}"
        );
        assert_eq!(
            body["invoked_arn"],
            live.as_str(),
            "the runtime sees the alias ARN for {what}"
        );
    }

    let (executed, body) = invoke_version(&client, "through:edge", None, json!({})).await;
    assert_eq!(executed, "$LATEST");
    assert_eq!(body["env_version"], "$LATEST");
    assert_eq!(body["marker"], "v2");
    assert_eq!(
        body["invoked_arn"],
        qualified_arn("through", "edge").as_str()
    );

    client
        .update_alias()
        .function_name("through")
        .name("live")
        .function_version("2")
        .send()
        .await
        .unwrap();
    let (executed, body) = invoke_version(&client, "through:live", None, json!({})).await;
    assert_eq!(executed, "2", "the alias now points at 2");
    assert_eq!(body["marker"], "v2");
    assert_eq!(body["my_var"], "two");
    assert_eq!(body["env_version"], "2");
    assert_eq!(body["invoked_arn"], live.as_str());

    for (name, qualifier) in [("through:nope", None), ("through", Some("nope"))] {
        let err = client
            .invoke()
            .function_name(name)
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await
            .unwrap_err();
        let (status, code, message) = service_error(err);
        assert_eq!(
            (status, code.as_str()),
            (404, "ResourceNotFoundException"),
            "{name} {qualifier:?}"
        );
        assert_eq!(
            message,
            format!("Function not found: {}", qualified_arn("through", "nope"))
        );
    }
    let err = client
        .get_function()
        .function_name("through")
        .qualifier("nope")
        .send()
        .await
        .unwrap_err();
    let (status, code, message) = service_error(err);
    assert_eq!((status, code.as_str()), (404, "ResourceNotFoundException"));
    assert_eq!(
        message,
        format!("Function not found: {}", qualified_arn("through", "nope")),
        "AWS recorded (get_function_alias_notfound_exc)"
    );
}

#[tokio::test]
async fn weighted_routing_splits_invokes_between_two_versions() {
    const N: usize = 400;
    const P: f64 = 0.3;
    let server = Server::start();
    let client = server.client();
    two_versions(&client, "split").await;
    client
        .create_alias()
        .function_name("split")
        .name("canary")
        .function_version("1")
        .routing_config(weights(&[("2", P)]))
        .send()
        .await
        .expect("create a weighted alias");
    let alias_arn = qualified_arn("split", "canary");

    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..N {
        let (executed, body) = invoke_version(&client, "split:canary", None, json!({})).await;
        let expected_marker = match executed.as_str() {
            "1" => "v1",
            "2" => "v2",
            other => panic!("invoke {i} executed version {other:?}"),
        };
        assert_eq!(body["marker"], expected_marker, "invoke {i}");
        assert_eq!(
            body["env_version"],
            executed.as_str(),
            "invoke {i}: AWS_LAMBDA_FUNCTION_VERSION is the version that ran"
        );
        assert_eq!(body["context_version"], executed.as_str(), "invoke {i}");
        assert_eq!(body["invoked_arn"], alias_arn.as_str(), "invoke {i}");
        *counts.entry(executed).or_default() += 1;
    }
    let twos = counts.get("2").copied().unwrap_or(0);
    let ones = counts.get("1").copied().unwrap_or(0);
    assert_eq!(ones + twos, N);
    // Binomial(N, P): the share of version 2 lies within P ± 4σ, σ = sqrt(P(1-P)/N) (≈ 0.023
    // for N = 400, so 0.208 ..= 0.392); a correct router fails this about once in 16 000 runs.
    let share = twos as f64 / N as f64;
    let sigma = (P * (1.0 - P) / N as f64).sqrt();
    assert!(
        (share - P).abs() <= 4.0 * sigma,
        "version 2 ran {twos} of {N} invokes ({share:.3}); expected {P} ± {:.3}",
        4.0 * sigma
    );
    assert!(ones > 0 && twos > 0, "both versions ran: {counts:?}");
}
