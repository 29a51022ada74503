//! Lambda layers, end to end: PublishLayerVersion, GetLayerVersion(ByArn), ListLayers,
//! ListLayerVersions, DeleteLayerVersion and the layer version policy through the real
//! `aws-sdk-lambda`; functions that reference layers (validation, the 5-layer and 250 MB
//! limits); and what a running function sees: Python and Node.js libraries from layers, later
//! layers winning, a layer's `bootstrap` serving a `provided` function, layer changes taking
//! effect, and deleted layer versions staying available to the functions that use them.
//!
//! Error messages are AWS's, as recorded against real AWS (LocalStack's snapshot tests of
//! `TestLambdaLayer`) or reported by users of real AWS.

mod common;

use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::operation::get_layer_version::GetLayerVersionOutput;
use aws_sdk_lambda::operation::publish_layer_version::PublishLayerVersionOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, FunctionCode, LayerVersionContentInput, Runtime};
use aws_sdk_lambda::Client;
use common::*;
use serde_json::{json, Value};

const ACCOUNT: &str = "000000000000";

const NOT_A_ZIP: &str =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";

const NOT_FOUND: &str = "The resource you requested does not exist.";

/// The fields GetLayerVersion and GetLayerVersionByArn share (two output types in the SDK).
#[derive(Debug)]
struct Shape {
    layer_arn: Option<String>,
    layer_version_arn: Option<String>,
    version: i64,
    description: Option<String>,
    license_info: Option<String>,
    created_date: Option<String>,
    runtimes: Vec<Runtime>,
    archs: Vec<Architecture>,
    code_sha256: Option<String>,
    code_size: i64,
    location: Option<String>,
}

macro_rules! shape {
    ($o:expr) => {{
        let o = &$o;
        let c = o.content().expect("Content");
        Shape {
            layer_arn: o.layer_arn().map(str::to_string),
            layer_version_arn: o.layer_version_arn().map(str::to_string),
            version: o.version(),
            description: o.description().map(str::to_string),
            license_info: o.license_info().map(str::to_string),
            created_date: o.created_date().map(str::to_string),
            runtimes: o.compatible_runtimes().to_vec(),
            archs: o.compatible_architectures().to_vec(),
            code_sha256: c.code_sha256().map(str::to_string),
            code_size: c.code_size(),
            location: c.location().map(str::to_string),
        }
    }};
}

fn layer_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:layer:{name}")
}

fn layer_version_arn(name: &str, version: i64) -> String {
    format!("{}:{version}", layer_arn(name))
}

/// A layer zip of `(path, text)` files, mode 0644.
fn layer_zip(files: &[(&str, &str)]) -> Vec<u8> {
    let entries: Vec<(&str, &[u8], u32)> = files
        .iter()
        .map(|(p, t)| (*p, t.as_bytes(), 0o644))
        .collect();
    zip(&entries)
}

/// A layer with one Python module `python/{module}.py` that sets `VALUE = value`.
fn py_module_layer(module: &str, value: &str) -> Vec<u8> {
    layer_zip(&[(
        &format!("python/{module}.py"),
        &format!("VALUE = {value:?}\n"),
    )])
}

/// Publish a layer version with only content.
async fn publish(client: &Client, name: &str, zip: Vec<u8>) -> PublishLayerVersionOutput {
    client
        .publish_layer_version()
        .layer_name(name)
        .content(
            LayerVersionContentInput::builder()
                .zip_file(Blob::new(zip))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("publish layer {name}: {e:?}"))
}

/// Publish a layer version with compatible runtimes and architectures.
async fn publish_compat(
    client: &Client,
    name: &str,
    zip: Vec<u8>,
    runtimes: &[Runtime],
    archs: &[Architecture],
) -> PublishLayerVersionOutput {
    client
        .publish_layer_version()
        .layer_name(name)
        .content(
            LayerVersionContentInput::builder()
                .zip_file(Blob::new(zip))
                .build(),
        )
        .set_compatible_runtimes(Some(runtimes.to_vec()))
        .set_compatible_architectures(Some(archs.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("publish layer {name}: {e:?}"))
}

async fn get_version(client: &Client, name: &str, version: i64) -> GetLayerVersionOutput {
    client
        .get_layer_version()
        .layer_name(name)
        .version_number(version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get layer version {name}:{version}: {e:?}"))
}

/// `(Version, LayerVersionArn)` of ListLayerVersions with optional filters.
async fn list_versions_of(
    client: &Client,
    name: &str,
    runtime: Option<Runtime>,
    arch: Option<Architecture>,
) -> Vec<(i64, String)> {
    client
        .list_layer_versions()
        .layer_name(name)
        .set_compatible_runtime(runtime)
        .set_compatible_architecture(arch)
        .send()
        .await
        .expect("list layer versions")
        .layer_versions()
        .iter()
        .map(|v| {
            (
                v.version(),
                v.layer_version_arn().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `LayerName -> LatestMatchingVersion.Version` of ListLayers with optional filters.
async fn list_layers_of(
    client: &Client,
    runtime: Option<Runtime>,
    arch: Option<Architecture>,
) -> Vec<(String, i64)> {
    let out = client
        .list_layers()
        .set_compatible_runtime(runtime)
        .set_compatible_architecture(arch)
        .send()
        .await
        .expect("list layers");
    let mut v: Vec<(String, i64)> = out
        .layers()
        .iter()
        .map(|l| {
            let name = l.layer_name().unwrap_or_default().to_string();
            assert_eq!(
                l.layer_arn(),
                Some(layer_arn(&name).as_str()),
                "LayerArn of {name}"
            );
            let latest = l
                .latest_matching_version()
                .unwrap_or_else(|| panic!("LatestMatchingVersion of {name}"));
            assert_eq!(
                latest.layer_version_arn(),
                Some(layer_version_arn(&name, latest.version()).as_str()),
                "LatestMatchingVersion.LayerVersionArn of {name}"
            );
            (name, latest.version())
        })
        .collect();
    v.sort();
    v
}

/// `(Arn, CodeSize)` of a function's `Layers`.
async fn function_layers(
    client: &Client,
    name: &str,
    qualifier: Option<&str>,
) -> Vec<(String, i64)> {
    client
        .get_function_configuration()
        .function_name(name)
        .set_qualifier(qualifier.map(str::to_string))
        .send()
        .await
        .expect("get function configuration")
        .layers()
        .iter()
        .map(|l| (l.arn().unwrap_or_default().to_string(), l.code_size()))
        .collect()
}

/// Set a function's `Layers` (UpdateFunctionConfiguration) and wait until the update is done.
async fn set_layers(client: &Client, name: &str, layers: Vec<String>) {
    client
        .update_function_configuration()
        .function_name(name)
        .set_layers(Some(layers))
        .send()
        .await
        .unwrap_or_else(|e| panic!("update layers of {name}: {e:?}"));
    wait_updated(client, name).await;
}

async fn wait_version_active(client: &Client, name: &str, version: &str) {
    client
        .wait_until_function_active_v2()
        .function_name(name)
        .qualifier(version)
        .wait(std::time::Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("version {version} of {name} becomes Active: {e:?}"));
}

#[track_caller]
fn assert_error(got: &(u16, String, String), status: u16, code: &str, message: &str) {
    assert_eq!(
        (got.0, got.1.as_str(), got.2.as_str()),
        (status, code, message),
        "status, error code and message"
    );
}

/// A Python handler that imports each module named in `event["modules"]` and reports its
/// `VALUE` (null when the module cannot be imported).
const MODULE_PROBE: &str = r#"
import importlib

def handler(event, context):
    out = {}
    for name in event["modules"]:
        try:
            out[name] = importlib.import_module(name).VALUE
        except ImportError:
            out[name] = None
    return out
"#;

async fn probe_modules(client: &Client, function: &str, modules: &[&str]) -> Value {
    let (body, err, log) = call(client, function, json!({ "modules": modules })).await;
    assert!(err.is_none(), "{function}: function error {body}\n{log}");
    body
}

// 1. The layer API ---------------------------------------------------------------------------

#[tokio::test]
async fn publish_get_and_download_a_layer_version() {
    let server = Server::start();
    let client = server.client();
    let v1_zip = layer_zip(&[("python/shared.py", "VALUE = 'one'\n")]);
    let v2_zip = layer_zip(&[("python/shared.py", "VALUE = 'two'\n")]);

    let spy = StatusSpy::default();
    let v1 = client
        .publish_layer_version()
        .layer_name("shared")
        .description("shared helpers")
        .content(
            LayerVersionContentInput::builder()
                .zip_file(Blob::new(v1_zip.clone()))
                .build(),
        )
        .compatible_runtimes(Runtime::Python312)
        .compatible_runtimes(Runtime::Python311)
        .compatible_architectures(Architecture::X8664)
        .license_info("MIT")
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("publish layer version");
    assert_eq!(spy.status(), 201, "PublishLayerVersion answers 201");
    assert_eq!(v1.layer_arn(), Some(layer_arn("shared").as_str()));
    assert_eq!(
        v1.layer_version_arn(),
        Some(layer_version_arn("shared", 1).as_str())
    );
    assert_eq!(v1.version(), 1);
    assert_eq!(v1.description(), Some("shared helpers"));
    assert_eq!(v1.license_info(), Some("MIT"));
    assert_eq!(
        v1.compatible_runtimes(),
        &[Runtime::Python312, Runtime::Python311]
    );
    assert_eq!(v1.compatible_architectures(), &[Architecture::X8664]);
    let created = v1.created_date().expect("CreatedDate");
    assert!(is_lambda_timestamp(created), "CreatedDate {created:?}");
    let content = v1.content().expect("Content");
    assert_eq!(content.code_sha256(), Some(code_sha256(&v1_zip).as_str()));
    assert_eq!(content.code_size(), v1_zip.len() as i64);
    let location = content.location().expect("Content.Location");
    let download = http_get(location);
    assert_eq!(download.status, 200, "{location}");
    assert!(
        download.body == v1_zip,
        "Content.Location serves exactly the layer zip ({} bytes, expected {})",
        download.body.len(),
        v1_zip.len()
    );

    // The next publish of the same name is version 2, with its own content.
    let v2 = publish(&client, "shared", v2_zip.clone()).await;
    assert_eq!(v2.version(), 2);
    assert_eq!(
        v2.layer_version_arn(),
        Some(layer_version_arn("shared", 2).as_str())
    );
    assert_eq!(
        v2.content().and_then(|c| c.code_sha256()),
        Some(code_sha256(&v2_zip).as_str())
    );
    assert!(v2.compatible_runtimes().is_empty());
    assert_eq!(v2.license_info(), None);
    assert_eq!(
        v2.description(),
        Some(""),
        "AWS answers an empty Description"
    );

    // GetLayerVersion by name, by layer ARN as the name, and GetLayerVersionByArn: same shape.
    let by_name = get_version(&client, "shared", 1).await;
    let by_layer_arn = get_version(&client, &layer_arn("shared"), 1).await;
    let by_arn = client
        .get_layer_version_by_arn()
        .arn(layer_version_arn("shared", 1))
        .send()
        .await
        .expect("get layer version by arn");
    for (how, got) in [
        ("by name", shape!(by_name)),
        ("by layer ARN", shape!(by_layer_arn)),
        ("by version ARN", shape!(by_arn)),
    ] {
        assert_eq!(got.layer_arn.as_deref(), v1.layer_arn(), "{how}");
        assert_eq!(
            got.layer_version_arn.as_deref(),
            v1.layer_version_arn(),
            "{how}"
        );
        assert_eq!(got.version, 1, "{how}");
        assert_eq!(got.description.as_deref(), Some("shared helpers"), "{how}");
        assert_eq!(got.license_info.as_deref(), Some("MIT"), "{how}");
        assert_eq!(got.created_date.as_deref(), v1.created_date(), "{how}");
        assert_eq!(
            got.runtimes,
            [Runtime::Python312, Runtime::Python311],
            "{how}"
        );
        assert_eq!(got.archs, [Architecture::X8664], "{how}");
        assert_eq!(
            got.code_sha256.as_deref(),
            Some(code_sha256(&v1_zip).as_str()),
            "{how}"
        );
        assert_eq!(got.code_size, v1_zip.len() as i64, "{how}");
        let body = http_get(got.location.as_deref().expect("Location")).body;
        assert!(body == v1_zip, "{how}: Location serves version 1's zip");
    }
    let got2 = get_version(&client, "shared", 2).await;
    let body = http_get(got2.content().and_then(|c| c.location()).unwrap()).body;
    assert!(
        body == v2_zip,
        "version 2's Location serves version 2's zip"
    );
}

#[tokio::test]
async fn unknown_layer_versions_are_not_found() {
    let server = Server::start();
    let client = server.client();
    publish(&client, "known", py_module_layer("known", "k")).await;

    let cases = [("nosuch", 1), ("known", 2)];
    for (name, version) in cases {
        let err = client
            .get_layer_version()
            .layer_name(name)
            .version_number(version)
            .send()
            .await
            .expect_err("unknown layer version");
        assert_error(
            &service_error(err),
            404,
            "ResourceNotFoundException",
            NOT_FOUND,
        );
        let err = client
            .get_layer_version_by_arn()
            .arn(layer_version_arn(name, version))
            .send()
            .await
            .expect_err("unknown layer version ARN");
        assert_error(
            &service_error(err),
            404,
            "ResourceNotFoundException",
            NOT_FOUND,
        );
    }
    // Version numbers start at 1.
    let err = client
        .get_layer_version()
        .layer_name("known")
        .version_number(0)
        .send()
        .await
        .expect_err("version 0");
    assert_error(
        &service_error(err),
        400,
        "InvalidParameterValueException",
        "Layer Version Cannot be less than 1",
    );
    // Listing the versions of a layer that does not exist is an empty list, not an error.
    assert!(list_versions_of(&client, "nosuch", None, None)
        .await
        .is_empty());
}

#[tokio::test]
async fn version_numbers_are_never_reused_and_delete_is_idempotent() {
    let server = Server::start();
    let client = server.client();
    for (i, value) in ["a", "b"].iter().enumerate() {
        let out = publish(&client, "counted", py_module_layer("counted", value)).await;
        assert_eq!(out.version(), i as i64 + 1);
    }
    for attempt in ["delete", "delete again"] {
        let spy = StatusSpy::default();
        client
            .delete_layer_version()
            .layer_name("counted")
            .version_number(2)
            .customize()
            .interceptor(spy.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{attempt}: {e:?}"));
        assert_eq!(spy.status(), 204, "{attempt} answers 204");
    }
    // Deleting in a layer that never existed is fine too.
    let spy = StatusSpy::default();
    client
        .delete_layer_version()
        .layer_name("never-published")
        .version_number(1)
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("delete in an unknown layer");
    assert_eq!(spy.status(), 204);

    let err = client
        .get_layer_version()
        .layer_name("counted")
        .version_number(2)
        .send()
        .await
        .expect_err("a deleted version is gone");
    assert_error(
        &service_error(err),
        404,
        "ResourceNotFoundException",
        NOT_FOUND,
    );
    assert_eq!(get_version(&client, "counted", 1).await.version(), 1);

    let v3 = publish(&client, "counted", py_module_layer("counted", "c")).await;
    assert_eq!(v3.version(), 3, "version 2 is never reused");
    assert_eq!(
        v3.layer_version_arn(),
        Some(layer_version_arn("counted", 3).as_str())
    );
    assert_eq!(
        list_versions_of(&client, "counted", None, None).await,
        vec![
            (3, layer_version_arn("counted", 3)),
            (1, layer_version_arn("counted", 1)),
        ]
    );
    assert_eq!(
        list_layers_of(&client, None, None).await,
        vec![("counted".to_string(), 3)]
    );

    // Delete everything: the layer no longer lists, and numbering still goes on.
    for v in [1, 3] {
        client
            .delete_layer_version()
            .layer_name("counted")
            .version_number(v)
            .send()
            .await
            .unwrap();
    }
    assert!(list_versions_of(&client, "counted", None, None)
        .await
        .is_empty());
    assert!(list_layers_of(&client, None, None).await.is_empty());
}

#[tokio::test]
async fn publish_refuses_what_is_not_a_usable_zip() {
    let server = Server::start();
    let client = server.client();
    let err = client
        .publish_layer_version()
        .layer_name("junk")
        .content(
            LayerVersionContentInput::builder()
                .zip_file(Blob::new(b"this is not a zip file".to_vec()))
                .build(),
        )
        .send()
        .await
        .expect_err("not a zip");
    // lamina appends what was wrong after AWS's sentence (as for CreateFunction).
    let got = service_error(err);
    assert_eq!(
        (got.0, got.1.as_str()),
        (400, "InvalidParameterValueException"),
        "{got:?}"
    );
    assert!(got.2.starts_with(NOT_A_ZIP), "{got:?}");

    // Entries that would escape the directory the layer is unpacked into.
    let cases = [
        (
            "../evil",
            zip(&[
                ("python/ok.py", b"VALUE = 1\n".as_slice(), 0o644),
                ("../evil", b"x".as_slice(), 0o644),
            ]),
        ),
        ("link", zip_with_symlink("link", "../../etc/passwd")),
    ];
    for (entry, package) in cases {
        let err = client
            .publish_layer_version()
            .layer_name("junk")
            .content(
                LayerVersionContentInput::builder()
                    .zip_file(Blob::new(package))
                    .build(),
            )
            .send()
            .await
            .expect_err("an escaping entry");
        let got = service_error(err);
        assert_eq!(
            (got.0, got.1.as_str()),
            (400, "InvalidParameterValueException"),
            "{entry}: {got:?}"
        );
        assert!(got.2.starts_with(NOT_A_ZIP), "{entry}: {got:?}");
    }
    assert!(list_versions_of(&client, "junk", None, None)
        .await
        .is_empty());
    assert!(list_layers_of(&client, None, None).await.is_empty());
    // The first good publish is version 1: refused publishes used no number.
    let ok = publish(&client, "junk", py_module_layer("ok", "1")).await;
    assert_eq!(ok.version(), 1);
}

#[tokio::test]
async fn list_layer_versions_newest_first_with_filters() {
    let server = Server::start();
    let client = server.client();
    use Architecture::{Arm64, X8664};
    let specs: [(&[Runtime], &[Architecture]); 4] = [
        (&[Runtime::Python312], &[X8664]),
        (&[Runtime::Nodejs20x], &[Arm64]),
        (&[Runtime::Python312, Runtime::Nodejs20x], &[X8664, Arm64]),
        (&[Runtime::Python311], &[X8664]),
    ];
    for (i, (runtimes, archs)) in specs.iter().enumerate() {
        let out = publish_compat(
            &client,
            "filtered",
            py_module_layer("f", &i.to_string()),
            runtimes,
            archs,
        )
        .await;
        assert_eq!(out.version(), i as i64 + 1);
    }
    let versions = |v: Vec<(i64, String)>| -> Vec<i64> {
        for (n, arn) in &v {
            assert_eq!(arn, &layer_version_arn("filtered", *n));
        }
        v.into_iter().map(|(n, _)| n).collect()
    };
    assert_eq!(
        versions(list_versions_of(&client, "filtered", None, None).await),
        vec![4, 3, 2, 1],
        "newest first"
    );
    assert_eq!(
        versions(list_versions_of(&client, "filtered", Some(Runtime::Python312), None).await),
        vec![3, 1]
    );
    assert_eq!(
        versions(list_versions_of(&client, "filtered", Some(Runtime::Nodejs20x), None).await),
        vec![3, 2]
    );
    assert_eq!(
        versions(list_versions_of(&client, "filtered", None, Some(Arm64)).await),
        vec![3, 2]
    );
    assert_eq!(
        versions(list_versions_of(&client, "filtered", None, Some(X8664)).await),
        vec![4, 3, 1]
    );
    assert_eq!(
        versions(
            list_versions_of(&client, "filtered", Some(Runtime::Python312), Some(Arm64)).await
        ),
        vec![3],
        "both filters apply"
    );
    assert!(
        list_versions_of(&client, "filtered", Some(Runtime::Java21), None)
            .await
            .is_empty()
    );

    // The list items carry the version's fields.
    let out = client
        .list_layer_versions()
        .layer_name("filtered")
        .compatible_runtime(Runtime::Python311)
        .send()
        .await
        .unwrap();
    let item = &out.layer_versions()[0];
    assert_eq!(item.version(), 4);
    assert_eq!(item.compatible_runtimes(), &[Runtime::Python311]);
    assert_eq!(item.compatible_architectures(), &[X8664]);
    let created = item.created_date().expect("CreatedDate");
    assert!(is_lambda_timestamp(created), "CreatedDate {created:?}");
}

#[tokio::test]
async fn list_layers_shows_the_latest_matching_version() {
    let server = Server::start();
    let client = server.client();
    use Architecture::{Arm64, X8664};
    // "multi": v1 Python on x86_64, v2 Node.js on arm64.
    publish_compat(
        &client,
        "multi",
        py_module_layer("m", "1"),
        &[Runtime::Python312],
        &[X8664],
    )
    .await;
    let v2 = client
        .publish_layer_version()
        .layer_name("multi")
        .description("node build")
        .license_info("Apache-2.0")
        .content(
            LayerVersionContentInput::builder()
                .zip_file(Blob::new(py_module_layer("m", "2")))
                .build(),
        )
        .compatible_runtimes(Runtime::Nodejs20x)
        .compatible_architectures(Arm64)
        .send()
        .await
        .unwrap();
    // "pyonly": one Python version.
    publish_compat(
        &client,
        "pyonly",
        py_module_layer("p", "1"),
        &[Runtime::Python312],
        &[X8664],
    )
    .await;

    assert_eq!(
        list_layers_of(&client, None, None).await,
        vec![("multi".into(), 2), ("pyonly".into(), 1)]
    );
    assert_eq!(
        list_layers_of(&client, Some(Runtime::Python312), None).await,
        vec![("multi".into(), 1), ("pyonly".into(), 1)],
        "the newest version that matches, not the newest version"
    );
    assert_eq!(
        list_layers_of(&client, Some(Runtime::Nodejs20x), None).await,
        vec![("multi".into(), 2)]
    );
    assert_eq!(
        list_layers_of(&client, None, Some(Arm64)).await,
        vec![("multi".into(), 2)]
    );
    assert_eq!(
        list_layers_of(&client, None, Some(X8664)).await,
        vec![("multi".into(), 1), ("pyonly".into(), 1)]
    );
    assert!(list_layers_of(&client, Some(Runtime::Java21), None)
        .await
        .is_empty());

    // The item is a full LayerVersionsListItem.
    let out = client.list_layers().send().await.unwrap();
    let multi = out
        .layers()
        .iter()
        .find(|l| l.layer_name() == Some("multi"))
        .unwrap();
    let latest = multi.latest_matching_version().unwrap();
    assert_eq!(latest.description(), Some("node build"));
    assert_eq!(latest.license_info(), Some("Apache-2.0"));
    assert_eq!(latest.compatible_runtimes(), &[Runtime::Nodejs20x]);
    assert_eq!(latest.compatible_architectures(), &[Arm64]);
    assert_eq!(latest.created_date(), v2.created_date());

    // After deleting v1, the Python filter no longer finds "multi".
    client
        .delete_layer_version()
        .layer_name("multi")
        .version_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        list_layers_of(&client, Some(Runtime::Python312), None).await,
        vec![("pyonly".into(), 1)]
    );
}

#[tokio::test]
async fn layer_version_permissions() {
    let server = Server::start();
    let client = server.client();
    publish(&client, "perm", py_module_layer("perm", "1")).await;
    publish(&client, "perm", py_module_layer("perm", "2")).await;
    let v1_arn = layer_version_arn("perm", 1);

    // No policy yet.
    let err = client
        .get_layer_version_policy()
        .layer_name("perm")
        .version_number(1)
        .send()
        .await
        .expect_err("no policy yet");
    assert_error(
        &service_error(err),
        404,
        "ResourceNotFoundException",
        "No policy is associated with the given resource.",
    );

    let spy = StatusSpy::default();
    let added = client
        .add_layer_version_permission()
        .layer_name("perm")
        .version_number(1)
        .statement_id("everyone")
        .action("lambda:GetLayerVersion")
        .principal("*")
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("add layer version permission");
    assert_eq!(spy.status(), 201, "AddLayerVersionPermission answers 201");
    let statement: Value =
        serde_json::from_str(added.statement().expect("Statement")).expect("Statement is JSON");
    assert_eq!(
        statement,
        json!({
            "Sid": "everyone",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "lambda:GetLayerVersion",
            "Resource": v1_arn,
        })
    );
    let rev1 = added.revision_id().expect("RevisionId").to_string();
    assert!(!rev1.is_empty());

    let policy = client
        .get_layer_version_policy()
        .layer_name("perm")
        .version_number(1)
        .send()
        .await
        .expect("get layer version policy");
    assert_eq!(policy.revision_id(), Some(rev1.as_str()));
    let doc: Value = serde_json::from_str(policy.policy().expect("Policy")).expect("JSON policy");
    assert_eq!(doc["Version"], "2012-10-17", "{doc}");
    assert_eq!(doc["Id"], "default", "{doc}");
    assert_eq!(doc["Statement"], json!([statement]), "{doc}");

    // The same statement id again: a conflict, and nothing changes.
    let err = client
        .add_layer_version_permission()
        .layer_name("perm")
        .version_number(1)
        .statement_id("everyone")
        .action("lambda:GetLayerVersion")
        .principal("123456789012")
        .send()
        .await
        .expect_err("duplicate statement id");
    assert_error(
        &service_error(err),
        409,
        "ResourceConflictException",
        "The statement id (everyone) provided already exists. Please provide a new statement id, or remove the existing statement.",
    );

    // A stale RevisionId is refused.
    let err = client
        .add_layer_version_permission()
        .layer_name("perm")
        .version_number(1)
        .statement_id("stale")
        .action("lambda:GetLayerVersion")
        .principal("*")
        .revision_id("00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .expect_err("stale revision");
    assert_error(
        &service_error(err),
        412,
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetLayerPolicy API to retrieve the latest Revision Id",
    );

    // Only lambda:GetLayerVersion can be granted.
    let err = client
        .add_layer_version_permission()
        .layer_name("perm")
        .version_number(1)
        .statement_id("wild")
        .action("*")
        .principal("*")
        .send()
        .await
        .expect_err("bad action");
    assert_error(
        &service_error(err),
        400,
        "ValidationException",
        "1 validation error detected: Value '*' at 'action' failed to satisfy constraint: Member must satisfy regular expression pattern: lambda:GetLayerVersion",
    );

    // A second statement for one account, with the current RevisionId.
    let added2 = client
        .add_layer_version_permission()
        .layer_name("perm")
        .version_number(1)
        .statement_id("one-account")
        .action("lambda:GetLayerVersion")
        .principal("123456789012")
        .revision_id(&rev1)
        .send()
        .await
        .expect("second statement");
    let rev2 = added2.revision_id().unwrap().to_string();
    assert_ne!(rev2, rev1, "the policy's RevisionId changes");
    let s2: Value = serde_json::from_str(added2.statement().unwrap()).unwrap();
    assert_eq!(s2["Sid"], "one-account");
    assert!(
        s2["Principal"] == "123456789012"
            || s2["Principal"] == json!({"AWS": "arn:aws:iam::123456789012:root"}),
        "the principal names the account: {s2}"
    );
    let policy = client
        .get_layer_version_policy()
        .layer_name("perm")
        .version_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(policy.revision_id(), Some(rev2.as_str()));
    let doc: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let sids: Vec<&str> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["everyone", "one-account"]);

    // The policy belongs to version 1 only.
    let err = client
        .get_layer_version_policy()
        .layer_name("perm")
        .version_number(2)
        .send()
        .await
        .expect_err("version 2 has no policy");
    assert_error(
        &service_error(err),
        404,
        "ResourceNotFoundException",
        "No policy is associated with the given resource.",
    );

    // Remove one statement.
    let spy = StatusSpy::default();
    client
        .remove_layer_version_permission()
        .layer_name("perm")
        .version_number(1)
        .statement_id("everyone")
        .customize()
        .interceptor(spy.clone())
        .send()
        .await
        .expect("remove statement");
    assert_eq!(
        spy.status(),
        204,
        "RemoveLayerVersionPermission answers 204"
    );
    let policy = client
        .get_layer_version_policy()
        .layer_name("perm")
        .version_number(1)
        .send()
        .await
        .unwrap();
    assert_ne!(policy.revision_id(), Some(rev2.as_str()));
    let doc: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    assert_eq!(doc["Statement"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["Statement"][0]["Sid"], "one-account");

    let err = client
        .remove_layer_version_permission()
        .layer_name("perm")
        .version_number(1)
        .statement_id("everyone")
        .send()
        .await
        .expect_err("already removed");
    assert_error(
        &service_error(err),
        404,
        "ResourceNotFoundException",
        "Statement everyone is not found in resource policy.",
    );

    // Unknown layer versions, for each of the three operations.
    for (layer, version) in [("perm", 9), ("perm-nosuch", 1)] {
        let message = format!(
            "Layer version {} does not exist.",
            layer_version_arn(layer, version)
        );
        let err = client
            .add_layer_version_permission()
            .layer_name(layer)
            .version_number(version)
            .statement_id("s")
            .action("lambda:GetLayerVersion")
            .principal("*")
            .send()
            .await
            .expect_err("add on unknown");
        assert_error(
            &service_error(err),
            404,
            "ResourceNotFoundException",
            &message,
        );
        let err = client
            .get_layer_version_policy()
            .layer_name(layer)
            .version_number(version)
            .send()
            .await
            .expect_err("get on unknown");
        assert_error(
            &service_error(err),
            404,
            "ResourceNotFoundException",
            &message,
        );
        let err = client
            .remove_layer_version_permission()
            .layer_name(layer)
            .version_number(version)
            .statement_id("s")
            .send()
            .await
            .expect_err("remove on unknown");
        assert_error(
            &service_error(err),
            404,
            "ResourceNotFoundException",
            &message,
        );
    }
}

#[tokio::test]
async fn layer_lists_paginate() {
    let server = Server::start();
    let client = server.client();
    for i in 0..3 {
        publish(&client, "paged", py_module_layer("p", &i.to_string())).await;
        publish(&client, &format!("layer-{i}"), py_module_layer("q", "q")).await;
    }
    let page = client
        .list_layer_versions()
        .layer_name("paged")
        .max_items(2)
        .send()
        .await
        .unwrap();
    let first: Vec<i64> = page.layer_versions().iter().map(|v| v.version()).collect();
    assert_eq!(first, [3, 2]);
    let marker = page.next_marker().expect("NextMarker after a full page");
    let page = client
        .list_layer_versions()
        .layer_name("paged")
        .max_items(2)
        .marker(marker)
        .send()
        .await
        .unwrap();
    let rest: Vec<i64> = page.layer_versions().iter().map(|v| v.version()).collect();
    assert_eq!(rest, [1]);
    assert_eq!(page.next_marker(), None);

    // The SDK's paginators see everything, a page at a time.
    let all: Vec<i64> = client
        .list_layer_versions()
        .layer_name("paged")
        .max_items(1)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap()
        .iter()
        .map(|v| v.version())
        .collect();
    assert_eq!(all, [3, 2, 1]);
    let mut names: Vec<String> = client
        .list_layers()
        .max_items(1)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap()
        .iter()
        .map(|l| l.layer_name().unwrap_or_default().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["layer-0", "layer-1", "layer-2", "paged"]);
}

#[tokio::test]
async fn concurrent_publishes_get_distinct_versions() {
    let server = Server::start();
    let client = server.client();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let zip = py_module_layer("racy", &i.to_string());
            let out = publish(&client, "racy", zip.clone()).await;
            (out.version(), code_sha256(&zip))
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    let mut versions: Vec<i64> = got.iter().map(|(v, _)| *v).collect();
    versions.sort();
    assert_eq!(versions, (1..=8).collect::<Vec<i64>>());
    // Each number holds the content its publish sent.
    for (version, sha) in got {
        let stored = get_version(&client, "racy", version).await;
        assert_eq!(
            stored.content().and_then(|c| c.code_sha256()),
            Some(sha.as_str()),
            "version {version}"
        );
    }
}

// 2. Functions that reference layers -----------------------------------------------------------

#[tokio::test]
async fn functions_list_their_layers_in_the_configuration() {
    let server = Server::start();
    let client = server.client();
    let a_zip = py_module_layer("la", "a");
    let b_zip = layer_zip(&[
        ("python/lb.py", "VALUE = 'b'\n"),
        ("python/extra.py", "VALUE = 'padding to change the size'\n"),
    ]);
    publish(&client, "la", a_zip.clone()).await;
    publish(&client, "lb", b_zip.clone()).await;
    let a = layer_version_arn("la", 1);
    let b = layer_version_arn("lb", 1);

    let created = create_with(
        &client,
        "uses-layers",
        Runtime::Python312,
        "app.handler",
        python_zip(MODULE_PROBE),
        |f| f.layers(&a).layers(&b),
    )
    .await;
    let listed: Vec<(String, i64)> = created
        .layers()
        .iter()
        .map(|l| (l.arn().unwrap_or_default().to_string(), l.code_size()))
        .collect();
    let expected = vec![
        (a.clone(), a_zip.len() as i64),
        (b.clone(), b_zip.len() as i64),
    ];
    assert_eq!(
        listed, expected,
        "CreateFunction answers with Layers in order"
    );
    assert_eq!(
        function_layers(&client, "uses-layers", None).await,
        expected
    );
    let got = client
        .get_function()
        .function_name("uses-layers")
        .send()
        .await
        .unwrap();
    let via_get: Vec<(String, i64)> = got
        .configuration()
        .unwrap()
        .layers()
        .iter()
        .map(|l| (l.arn().unwrap_or_default().to_string(), l.code_size()))
        .collect();
    assert_eq!(via_get, expected, "GetFunction's Configuration.Layers");

    // UpdateFunctionConfiguration replaces the list (here: reversed, then one, then none).
    let updated = client
        .update_function_configuration()
        .function_name("uses-layers")
        .layers(&b)
        .layers(&a)
        .send()
        .await
        .unwrap();
    let in_answer: Vec<&str> = updated
        .layers()
        .iter()
        .map(|l| l.arn().unwrap_or_default())
        .collect();
    assert_eq!(in_answer, [b.as_str(), a.as_str()]);
    wait_updated(&client, "uses-layers").await;
    assert_eq!(
        function_layers(&client, "uses-layers", None).await,
        vec![
            (b.clone(), b_zip.len() as i64),
            (a.clone(), a_zip.len() as i64),
        ]
    );
    // An update that leaves Layers out keeps them.
    client
        .update_function_configuration()
        .function_name("uses-layers")
        .description("only the description")
        .send()
        .await
        .unwrap();
    wait_updated(&client, "uses-layers").await;
    assert_eq!(function_layers(&client, "uses-layers", None).await.len(), 2);
    set_layers(&client, "uses-layers", vec![]).await;
    assert!(function_layers(&client, "uses-layers", None)
        .await
        .is_empty());
}

#[tokio::test]
async fn layer_references_are_validated() {
    let server = Server::start();
    let client = server.client();
    let west = server.client_in("us-west-2");
    let mut arns = Vec::new();
    for i in 0..6 {
        let name = format!("l{i}");
        publish(&client, &name, py_module_layer(&name, "x")).await;
        arns.push(layer_version_arn(&name, 1));
    }
    publish(&client, "l0", py_module_layer("l0", "y")).await;
    publish(&west, "western", py_module_layer("western", "w")).await;
    let western = "arn:aws:lambda:us-west-2:000000000000:layer:western:1".to_string();
    let missing_version = layer_version_arn("l0", 9);
    let missing_layer = layer_version_arn("nosuch", 1);

    // (Layers, expected message, whether the message must match exactly or only begin so).
    // All but the last are InvalidParameterValueException; a layer ARN without a version
    // fails the model's pattern (ValidationException).
    let unversioned = layer_arn("l1");
    let cases: Vec<(Vec<String>, String)> = vec![
        (arns.clone(), "Cannot reference more than 5 layers.".into()),
        (
            vec![arns[1].clone(), missing_version.clone()],
            format!("Layer version {missing_version} does not exist."),
        ),
        (
            vec![missing_layer.clone()],
            format!("Layer version {missing_layer} does not exist."),
        ),
        (
            vec![arns[0].clone(), layer_version_arn("l0", 2)],
            format!(
                "Two different versions of the same layer are not allowed to be referenced in the same function. {} and {} are versions of the same layer.",
                arns[0],
                layer_version_arn("l0", 2)
            ),
        ),
        (
            vec![western.clone()],
            "Layers are not in the same region as the function. Layers are expected to be in region us-east-1.".into(),
        ),
        (
            vec![unversioned.clone()],
            format!("1 validation error detected: Value '[{unversioned}]' at 'layers' failed to satisfy constraint: "),
        ),
    ];
    let expected_for = |layers: &Vec<String>, message: &String| {
        let code = if layers == &vec![unversioned.clone()] {
            "ValidationException"
        } else {
            "InvalidParameterValueException"
        };
        (400u16, code.to_string(), message.clone())
    };
    let matches = |got: &(u16, String, String), expected: &(u16, String, String)| {
        if expected.1 == "ValidationException" {
            got.0 == expected.0 && got.1 == expected.1 && got.2.starts_with(&expected.2)
        } else {
            got == expected
        }
    };
    // Every case is tried; the mismatches are reported together.
    let mut mismatches = Vec::new();
    for (i, (layers, message)) in cases.iter().enumerate() {
        let name = format!("refused-{i}");
        let got = client
            .create_function()
            .function_name(&name)
            .runtime(Runtime::Python312)
            .role(ROLE)
            .handler("app.handler")
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(python_zip(MODULE_PROBE)))
                    .build(),
            )
            .set_layers(Some(layers.clone()))
            .send()
            .await;
        let expected = expected_for(layers, message);
        match got {
            Ok(_) => {
                mismatches.push(format!(
                    "CreateFunction {layers:?}: accepted, expected {expected:?}"
                ));
                client
                    .delete_function()
                    .function_name(&name)
                    .send()
                    .await
                    .unwrap();
            }
            Err(e) => {
                let got = service_error(e);
                if !matches(&got, &expected) {
                    mismatches.push(format!(
                        "CreateFunction {layers:?}: got {got:?}, expected {expected:?}"
                    ));
                }
            }
        }
    }
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

    // The same checks on UpdateFunctionConfiguration, which then changes nothing.
    create_with(
        &client,
        "kept",
        Runtime::Python312,
        "app.handler",
        python_zip(MODULE_PROBE),
        |f| f.layers(&arns[0]),
    )
    .await;
    let before = client
        .get_function_configuration()
        .function_name("kept")
        .send()
        .await
        .unwrap();
    for (layers, message) in &cases {
        let got = client
            .update_function_configuration()
            .function_name("kept")
            .set_layers(Some(layers.clone()))
            .send()
            .await;
        let expected = expected_for(layers, message);
        match got {
            Ok(_) => {
                mismatches.push(format!(
                    "UpdateFunctionConfiguration {layers:?}: accepted, expected {expected:?}"
                ));
                wait_updated(&client, "kept").await;
            }
            Err(e) => {
                let got = service_error(e);
                if !matches(&got, &expected) {
                    mismatches.push(format!(
                        "UpdateFunctionConfiguration {layers:?}: got {got:?}, expected {expected:?}"
                    ));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    let after = client
        .get_function_configuration()
        .function_name("kept")
        .send()
        .await
        .unwrap();
    assert_eq!(after.revision_id(), before.revision_id());
    assert_eq!(
        function_layers(&client, "kept", None).await,
        vec![(arns[0].clone(), py_module_layer("l0", "x").len() as i64)]
    );

    // Exactly five is fine.
    set_layers(&client, "kept", arns[..5].to_vec()).await;
    assert_eq!(function_layers(&client, "kept", None).await.len(), 5);
    let body = probe_modules(&client, "kept", &["l0", "l4", "l5"]).await;
    assert_eq!(body, json!({"l0": "x", "l4": "x", "l5": null}));
}

#[tokio::test]
async fn function_and_layers_over_250_mb_unzipped_are_refused() {
    const MIB: u64 = 1024 * 1024;
    let server = Server::start();
    let client = server.client();
    // Each part fits on its own; together they do not.
    let layer = compressible_zip(200 * MIB);
    let function = compressible_zip(61 * MIB);
    let total = 261 * MIB;
    let message = format!(
        "Function code combined with layers exceeds the maximum allowed size of 262144000 bytes. The actual size is {total} bytes."
    );
    publish(&client, "big", layer).await;
    let big = layer_version_arn("big", 1);

    // CreateFunction.
    let err = client
        .create_function()
        .function_name("too-big")
        .runtime(Runtime::Python312)
        .role(ROLE)
        .handler("app.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(function.clone()))
                .build(),
        )
        .layers(&big)
        .send()
        .await
        .expect_err("over 250 MB with the layer");
    assert_error(
        &service_error(err),
        400,
        "InvalidParameterValueException",
        &message,
    );
    assert!(client
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
        .is_empty());

    // UpdateFunctionConfiguration adding the layer to a big function.
    create(
        &client,
        "big-code",
        Runtime::Python312,
        "app.handler",
        function.clone(),
    )
    .await;
    let err = client
        .update_function_configuration()
        .function_name("big-code")
        .layers(&big)
        .send()
        .await
        .expect_err("adding the layer goes over 250 MB");
    assert_error(
        &service_error(err),
        400,
        "InvalidParameterValueException",
        &message,
    );
    assert!(function_layers(&client, "big-code", None).await.is_empty());

    // UpdateFunctionCode making a function with the layer too big.
    create_with(
        &client,
        "big-layer",
        Runtime::Python312,
        "app.handler",
        python_zip(MODULE_PROBE),
        |f| f.layers(&big),
    )
    .await;
    let err = client
        .update_function_code()
        .function_name("big-layer")
        .zip_file(Blob::new(function))
        .send()
        .await
        .expect_err("new code goes over 250 MB with the layer");
    assert_error(
        &service_error(err),
        400,
        "InvalidParameterValueException",
        &message,
    );
    let cfg = client
        .get_function_configuration()
        .function_name("big-layer")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cfg.code_sha256(),
        Some(code_sha256(&python_zip(MODULE_PROBE)).as_str()),
        "the refused code did not replace the old"
    );
}

// 3. What the function sees --------------------------------------------------------------------

#[tokio::test]
async fn a_python_layer_is_importable() {
    let server = Server::start();
    let client = server.client();
    let layer = layer_zip(&[(
        "python/mylib.py",
        "def greet(name):\n    return 'hello ' + name + ' from a python layer'\n",
    )]);
    publish_compat(
        &client,
        "mylib",
        layer,
        &[Runtime::Python312],
        &[Architecture::X8664],
    )
    .await;
    let app = "import mylib\n\ndef handler(event, context):\n    return {'greeting': mylib.greet(event['name'])}\n";
    create_with(
        &client,
        "py-with-layer",
        Runtime::Python312,
        "app.handler",
        python_zip(app),
        |f| f.layers(layer_version_arn("mylib", 1)),
    )
    .await;
    for _ in 0..2 {
        let (body, err, log) = call(&client, "py-with-layer", json!({"name": "lamina"})).await;
        assert!(err.is_none(), "{body}\n{log}");
        assert_eq!(
            body,
            json!({"greeting": "hello lamina from a python layer"})
        );
    }

    // A function without the layer cannot import it: the layer belongs to the function that
    // references it, not to every function.
    create(
        &client,
        "py-without-layer",
        Runtime::Python312,
        "app.handler",
        python_zip(MODULE_PROBE),
    )
    .await;
    assert_eq!(
        probe_modules(&client, "py-without-layer", &["mylib"]).await,
        json!({"mylib": null})
    );
}

#[tokio::test]
async fn a_python_layer_site_packages_directory_is_importable() {
    // AWS puts /opt/python/lib/python3.X/site-packages on sys.path too (X of the runtime).
    let server = Server::start();
    let client = server.client();
    publish(
        &client,
        "sitepkgs",
        layer_zip(&[(
            "python/lib/python3.11/site-packages/sitemod/__init__.py",
            "VALUE = 'from site-packages'\n",
        )]),
    )
    .await;
    create_with(
        &client,
        "py311",
        Runtime::Python311,
        "app.handler",
        python_zip(MODULE_PROBE),
        |f| f.layers(layer_version_arn("sitepkgs", 1)),
    )
    .await;
    assert_eq!(
        probe_modules(&client, "py311", &["sitemod"]).await,
        json!({"sitemod": "from site-packages"})
    );
}

#[tokio::test]
async fn a_node_layer_is_requirable() {
    let server = Server::start();
    let client = server.client();
    publish(
        &client,
        "nodelib",
        layer_zip(&[
            (
                "nodejs/node_modules/mylib/index.js",
                "exports.greet = (name) => 'hello ' + name + ' from a node layer';\n",
            ),
            (
                "nodejs/node20/node_modules/versioned/index.js",
                "exports.where = 'node20';\n",
            ),
        ]),
    )
    .await;
    let index = "const mylib = require('mylib');\n\
        exports.handler = async (event) => {\n\
          let versioned = null;\n\
          try { versioned = require('versioned').where; } catch (e) { versioned = 'missing: ' + e.code; }\n\
          return { greeting: mylib.greet(event.name), versioned };\n\
        };\n";
    create_with(
        &client,
        "node-with-layer",
        Runtime::Nodejs20x,
        "index.handler",
        zip(&[("index.js", index.as_bytes(), 0o644)]),
        |f| f.layers(layer_version_arn("nodelib", 1)),
    )
    .await;
    let (body, err, log) = call(&client, "node-with-layer", json!({"name": "lamina"})).await;
    assert!(err.is_none(), "{body}\n{log}");
    assert_eq!(body["greeting"], "hello lamina from a node layer", "{body}");
    // AWS's NODE_PATH also has /opt/nodejs/node20/node_modules for nodejs20.x.
    assert_eq!(body["versioned"], "node20", "{body}");
}

#[tokio::test]
async fn later_layers_win_and_the_order_can_change() {
    let server = Server::start();
    let client = server.client();
    publish(
        &client,
        "first",
        layer_zip(&[
            ("python/conflict.py", "VALUE = 'first'\n"),
            ("python/only_first.py", "VALUE = 'first'\n"),
            ("python/shadow.py", "VALUE = 'layer'\n"),
        ]),
    )
    .await;
    publish(
        &client,
        "second",
        layer_zip(&[
            ("python/conflict.py", "VALUE = 'second'\n"),
            ("python/only_second.py", "VALUE = 'second'\n"),
        ]),
    )
    .await;
    let first = layer_version_arn("first", 1);
    let second = layer_version_arn("second", 1);
    // The function's own package has a `shadow` module too: the function's code comes first.
    let package = zip(&[
        ("app.py", MODULE_PROBE.as_bytes(), 0o644),
        ("shadow.py", b"VALUE = 'function'\n".as_slice(), 0o644),
    ]);
    create_with(
        &client,
        "ordered",
        Runtime::Python312,
        "app.handler",
        package,
        |f| f.layers(&first).layers(&second),
    )
    .await;
    let modules = ["conflict", "only_first", "only_second", "shadow"];
    assert_eq!(
        probe_modules(&client, "ordered", &modules).await,
        json!({
            "conflict": "second",
            "only_first": "first",
            "only_second": "second",
            "shadow": "function",
        }),
        "both layers are merged, the later one wins"
    );

    set_layers(&client, "ordered", vec![second.clone(), first.clone()]).await;
    assert_eq!(
        probe_modules(&client, "ordered", &modules).await,
        json!({
            "conflict": "first",
            "only_first": "first",
            "only_second": "second",
            "shadow": "function",
        }),
        "reversed order: the other layer wins"
    );
}

#[tokio::test]
async fn changing_layers_takes_effect_on_the_next_invoke() {
    let server = Server::start();
    let client = server.client();
    publish(&client, "evolving", py_module_layer("evolving", "v1")).await;
    publish(&client, "evolving", py_module_layer("evolving", "v2")).await;
    publish(&client, "other", py_module_layer("other", "o")).await;
    create_with(
        &client,
        "follows",
        Runtime::Python312,
        "app.handler",
        python_zip(MODULE_PROBE),
        |f| f.layers(layer_version_arn("evolving", 1)),
    )
    .await;
    let modules = ["evolving", "other"];
    assert_eq!(
        probe_modules(&client, "follows", &modules).await,
        json!({"evolving": "v1", "other": null})
    );
    set_layers(&client, "follows", vec![layer_version_arn("evolving", 2)]).await;
    assert_eq!(
        probe_modules(&client, "follows", &modules).await,
        json!({"evolving": "v2", "other": null})
    );
    set_layers(
        &client,
        "follows",
        vec![
            layer_version_arn("evolving", 2),
            layer_version_arn("other", 1),
        ],
    )
    .await;
    assert_eq!(
        probe_modules(&client, "follows", &modules).await,
        json!({"evolving": "v2", "other": "o"})
    );
    set_layers(&client, "follows", vec![]).await;
    assert_eq!(
        probe_modules(&client, "follows", &modules).await,
        json!({"evolving": null, "other": null}),
        "no layers: nothing to import"
    );
}

/// A `bootstrap` for a layer: the Runtime API loop with curl; it answers with where it came
/// from (`@WHO@`), a value from a helper file next to it, and the text of the file the
/// function's handler names in the function's own package.
const LAYER_BOOTSTRAP: &str = r#"#!/bin/sh
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/runtime-helper.sh"
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
MESSAGE="$(cat "$LAMBDA_TASK_ROOT/$_HANDLER")"
while true; do
  HEADERS="$(mktemp)"
  EVENT=$(curl -sS -LD "$HEADERS" "$API/invocation/next")
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)
  rm -f "$HEADERS"
  curl -sS -X POST "$API/invocation/$REQUEST_ID/response" \
    -d "{\"from\": \"@WHO@\", \"helper\": \"$HELPER\", \"message\": \"$MESSAGE\", \"event\": $EVENT}" > /dev/null
done
"#;

fn runtime_layer(who: &str) -> Vec<u8> {
    let bootstrap = LAYER_BOOTSTRAP.replace("@WHO@", who);
    zip(&[
        ("bootstrap", bootstrap.as_bytes(), 0o755),
        (
            "runtime-helper.sh",
            b"HELPER=\"helper from the layer\"\n".as_slice(),
            0o644,
        ),
    ])
}

#[tokio::test]
async fn a_layer_bootstrap_serves_a_provided_function() {
    let server = Server::start();
    let client = server.client();
    publish_compat(
        &client,
        "shell-runtime",
        runtime_layer("layer"),
        &[Runtime::Providedal2023],
        &[Architecture::X8664],
    )
    .await;
    // The function's package has no bootstrap, only the file its handler names.
    create_with(
        &client,
        "custom",
        Runtime::Providedal2023,
        "message.txt",
        zip(&[(
            "message.txt",
            b"hello from the function package".as_slice(),
            0o644,
        )]),
        |f| f.layers(layer_version_arn("shell-runtime", 1)),
    )
    .await;
    let state = client
        .get_function_configuration()
        .function_name("custom")
        .send()
        .await
        .unwrap();
    assert_eq!(
        state.state(),
        Some(&aws_sdk_lambda::types::State::Active),
        "{:?}",
        state.state_reason()
    );
    for i in 0..2 {
        let (body, err, log) = call(&client, "custom", json!({"n": i})).await;
        assert!(err.is_none(), "{body}\n{log}");
        assert_eq!(
            body,
            json!({
                "from": "layer",
                "helper": "helper from the layer",
                "message": "hello from the function package",
                "event": {"n": i},
            })
        );
    }

    // Layers merge into one directory: a later layer that only brings `runtime-helper.sh`
    // replaces the helper the earlier layer's bootstrap sources from its own directory; a
    // later layer's `bootstrap` replaces the earlier one.
    publish(
        &client,
        "helper-override",
        zip(&[(
            "runtime-helper.sh",
            b"HELPER=\"helper from the later layer\"\n".as_slice(),
            0o644,
        )]),
    )
    .await;
    publish(&client, "other-runtime", runtime_layer("the other layer")).await;
    set_layers(
        &client,
        "custom",
        vec![
            layer_version_arn("shell-runtime", 1),
            layer_version_arn("helper-override", 1),
        ],
    )
    .await;
    let (body, err, log) = call(&client, "custom", json!("merged")).await;
    assert!(err.is_none(), "{body}\n{log}");
    assert_eq!(body["from"], "layer", "{body}");
    assert_eq!(body["helper"], "helper from the later layer", "{body}");
    set_layers(
        &client,
        "custom",
        vec![
            layer_version_arn("shell-runtime", 1),
            layer_version_arn("other-runtime", 1),
        ],
    )
    .await;
    let (body, err, log) = call(&client, "custom", json!("replaced")).await;
    assert!(err.is_none(), "{body}\n{log}");
    assert_eq!(body["from"], "the other layer", "{body}");

    // A function with its own bootstrap uses its own, even with a runtime layer.
    let own = LAYER_BOOTSTRAP
        .replace("@WHO@", "function")
        .replace(". \"$HERE/runtime-helper.sh\"\n", "HELPER=own\n");
    create_with(
        &client,
        "own-bootstrap",
        Runtime::Providedal2023,
        "message.txt",
        zip(&[
            ("bootstrap", own.as_bytes(), 0o755),
            ("message.txt", b"mine".as_slice(), 0o644),
        ]),
        |f| f.layers(layer_version_arn("shell-runtime", 1)),
    )
    .await;
    let (body, err, log) = call(&client, "own-bootstrap", json!(1)).await;
    assert!(err.is_none(), "{body}\n{log}");
    assert_eq!(body["from"], "function", "{body}");
}

#[tokio::test]
async fn a_deleted_layer_version_keeps_serving_the_functions_that_use_it() {
    let mut server = Server::start();
    let client = server.client();
    let layer = py_module_layer("kept", "still here");
    publish(&client, "doomed", layer.clone()).await;
    let arn = layer_version_arn("doomed", 1);
    create_with(
        &client,
        "survivor",
        Runtime::Python312,
        "app.handler",
        python_zip(MODULE_PROBE),
        |f| f.layers(&arn),
    )
    .await;
    let expected = json!({"kept": "still here"});
    assert_eq!(
        probe_modules(&client, "survivor", &["kept"]).await,
        expected
    );

    client
        .delete_layer_version()
        .layer_name("doomed")
        .version_number(1)
        .send()
        .await
        .unwrap();
    let err = client
        .get_layer_version()
        .layer_name("doomed")
        .version_number(1)
        .send()
        .await
        .expect_err("deleted");
    assert_error(
        &service_error(err),
        404,
        "ResourceNotFoundException",
        NOT_FOUND,
    );

    // Warm, then in a new environment (a configuration change that leaves Layers alone), then
    // after a restart of lamina: the function still has its copy.
    assert_eq!(
        probe_modules(&client, "survivor", &["kept"]).await,
        expected
    );
    client
        .update_function_configuration()
        .function_name("survivor")
        .environment(env(&[("FRESH", "1")]))
        .send()
        .await
        .expect("a configuration change that leaves Layers alone");
    wait_updated(&client, "survivor").await;
    assert_eq!(
        probe_modules(&client, "survivor", &["kept"]).await,
        expected
    );
    assert_eq!(
        function_layers(&client, "survivor", None).await,
        vec![(arn.clone(), layer.len() as i64)],
        "the configuration still lists the deleted version"
    );

    server.restart();
    let client = server.client();
    assert_eq!(
        probe_modules(&client, "survivor", &["kept"]).await,
        expected,
        "after a restart"
    );

    // A new function cannot use the deleted version.
    let err = client
        .create_function()
        .function_name("latecomer")
        .runtime(Runtime::Python312)
        .role(ROLE)
        .handler("app.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(python_zip(MODULE_PROBE)))
                .build(),
        )
        .layers(&arn)
        .send()
        .await
        .expect_err("a deleted layer version");
    assert_error(
        &service_error(err),
        400,
        "InvalidParameterValueException",
        &format!("Layer version {arn} does not exist."),
    );
    // And the layer's numbering goes on.
    let next = publish(&client, "doomed", py_module_layer("kept", "new")).await;
    assert_eq!(next.version(), 2);
}

#[tokio::test]
async fn published_function_versions_keep_their_layers() {
    let server = Server::start();
    let client = server.client();
    let v1_zip = py_module_layer("lib", "layer v1");
    publish(&client, "lib", v1_zip.clone()).await;
    publish(&client, "lib", py_module_layer("lib", "layer v2")).await;
    create_with(
        &client,
        "versioned",
        Runtime::Python312,
        "app.handler",
        python_zip(MODULE_PROBE),
        |f| f.layers(layer_version_arn("lib", 1)).publish(true),
    )
    .await;
    wait_version_active(&client, "versioned", "1").await;
    set_layers(&client, "versioned", vec![layer_version_arn("lib", 2)]).await;

    assert_eq!(
        function_layers(&client, "versioned", Some("1")).await,
        vec![(layer_version_arn("lib", 1), v1_zip.len() as i64)]
    );
    let event = json!({"modules": ["lib"]});
    let (_, v1) = invoke_version(&client, "versioned", Some("1"), event.clone()).await;
    assert_eq!(v1, json!({"lib": "layer v1"}));
    let (_, latest) = invoke_version(&client, "versioned", None, event.clone()).await;
    assert_eq!(latest, json!({"lib": "layer v2"}));
    let v2 = client
        .publish_version()
        .function_name("versioned")
        .send()
        .await
        .unwrap();
    assert_eq!(
        v2.version(),
        Some("2"),
        "a layer change is a change to publish"
    );
    let (_, body) = invoke_version(&client, "versioned", Some("2"), event).await;
    assert_eq!(body, json!({"lib": "layer v2"}));
}
