//! The behaviour every [`Store`] backend must show. Each backend's tests call [`run`] on a fresh,
//! empty store; it panics (as a test does) on the first difference.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lamina_types::function::{
    EphemeralStorage, FunctionConfiguration, FunctionVersion, LoggingConfig, SnapStartResponse,
    Tags, TracingConfig,
};
use lamina_types::names::{FunctionKey, LATEST};

use lamina_types::asynchronous::{DestinationConfig, EventInvokeConfig, QueueKey};

use crate::{
    AsyncEvent, HandleOutcome, NewMessage, QueueRecord, ReceiveOptions, Store, StoreError,
    Undelivered,
};

/// A plausible `$LATEST` of a function called `name` in `000000000000` / `us-east-1`.
pub fn sample_version(name: &str) -> FunctionVersion {
    let key = FunctionKey {
        account: "000000000000".into(),
        region: "us-east-1".into(),
        name: name.into(),
    };
    FunctionVersion {
        config: FunctionConfiguration {
            function_name: name.into(),
            function_arn: key.arn(),
            runtime: Some("provided.al2023".into()),
            role: "arn:aws:iam::000000000000:role/r".into(),
            handler: Some("h".into()),
            code_size: 10,
            description: String::new(),
            timeout: 3,
            memory_size: 128,
            last_modified: "2026-01-01T00:00:00.000+0000".into(),
            code_sha256: "x".into(),
            version: LATEST.into(),
            environment: None,
            tracing_config: TracingConfig {
                mode: "PassThrough".into(),
            },
            revision_id: "r1".into(),
            state: Some("Active".into()),
            state_reason: None,
            state_reason_code: None,
            last_update_status: Some("Successful".into()),
            last_update_status_reason: None,
            last_update_status_reason_code: None,
            package_type: "Zip".into(),
            architectures: vec!["x86_64".into()],
            ephemeral_storage: EphemeralStorage { size: 512 },
            snap_start: SnapStartResponse {
                apply_on: "None".into(),
                optimization_status: "Off".into(),
            },
            logging_config: LoggingConfig::default(),
            dead_letter_config: None,
            vpc_config: None,
            kms_key_arn: None,
            file_system_configs: None,
            image_config_response: None,
            layers: Vec::new(),
        },
        key,
        code_sha256_hex: "00".repeat(32),
        code_dir: PathBuf::new(),
        layers: Vec::new(),
    }
}

/// Run the suite against an empty store.
pub async fn run(store: &dyn Store) {
    functions(store).await;
    revisions(store).await;
    listing(store).await;
    tags(store).await;
    events(store).await;
    versions_and_aliases(store).await;
    concurrency(store).await;
    provisioned(store).await;
    layers(store).await;
    event_configs(store).await;
    queues(store).await;
    messages(store).await;
    redrive(store).await;
}

async fn layers(store: &dyn Store) {
    use lamina_types::layer::{LayerVersion, LayerVersionContent, StoredLayerVersion};
    let make = |n: u64| -> crate::MakeLayerVersion {
        Box::new(move |version| {
            assert_eq!(version, n);
            StoredLayerVersion {
                layer: LayerVersion {
                    content: LayerVersionContent {
                        location: String::new(),
                        code_sha256: "x".into(),
                        code_size: 1,
                    },
                    layer_arn: "arn:aws:lambda:us-east-1:000000000000:layer:lib".into(),
                    layer_version_arn: format!(
                        "arn:aws:lambda:us-east-1:000000000000:layer:lib:{version}"
                    ),
                    description: String::new(),
                    created_date: "t".into(),
                    version,
                    compatible_runtimes: vec![],
                    compatible_architectures: vec![],
                    license_info: None,
                },
                code_sha256_hex: "ab".into(),
                policy: None,
                policy_revision: "p0".into(),
            }
        })
    };
    let (a, r) = ("000000000000", "us-east-1");
    store
        .publish_layer_version(a, r, "lib", make(1))
        .await
        .unwrap();
    store
        .publish_layer_version(a, r, "lib", make(2))
        .await
        .unwrap();
    let versions: Vec<u64> = store
        .list_layer_versions(a, r, Some("lib"))
        .await
        .unwrap()
        .iter()
        .map(|l| l.layer.version)
        .collect();
    assert_eq!(versions, [2, 1], "newest first");
    assert!(store.delete_layer_version(a, r, "lib", 2).await.unwrap());
    assert!(store
        .get_layer_version(a, r, "lib", 2)
        .await
        .unwrap()
        .is_none());
    // Numbers are never reused.
    store
        .publish_layer_version(a, r, "lib", make(3))
        .await
        .unwrap();
    store
        .put_layer_policy(a, r, "lib", 3, Some("{}".into()), "p1".into())
        .await
        .unwrap();
    let got = store
        .get_layer_version(a, r, "lib", 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.policy.as_deref(), got.policy_revision.as_str()),
        (Some("{}"), "p1")
    );
    assert!(matches!(
        store
            .put_layer_policy(a, r, "lib", 9, None, "p".into())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.list_layer_versions(a, r, None).await.unwrap().len(),
        2
    );
    // Layers are per region.
    assert!(store
        .list_layer_versions(a, "eu-west-1", None)
        .await
        .unwrap()
        .is_empty());
}

async fn provisioned(store: &dyn Store) {
    use lamina_types::function::ProvisionedConcurrencyConfig;
    let v = sample_version("prov");
    let config = |q: &str, n: u32| ProvisionedConcurrencyConfig {
        qualifier: q.into(),
        requested_provisioned_concurrent_executions: n,
        available_provisioned_concurrent_executions: 0,
        allocated_provisioned_concurrent_executions: 0,
        status: "IN_PROGRESS".into(),
        status_reason: None,
        last_modified: "t".into(),
    };
    assert!(matches!(
        store.put_provisioned(&v.key, &config("1", 1)).await,
        Err(StoreError::NotFound(_))
    ));
    store.create_function(&v, &Tags::new()).await.unwrap();
    store
        .put_provisioned(&v.key, &config("1", 1))
        .await
        .unwrap();
    store
        .put_provisioned(&v.key, &config("live", 2))
        .await
        .unwrap();
    store
        .put_provisioned(&v.key, &config("1", 3))
        .await
        .unwrap();
    assert_eq!(
        store.get_provisioned(&v.key, "1").await.unwrap(),
        Some(config("1", 3))
    );
    let all = store.list_provisioned(None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(store.list_provisioned(Some(&v.key)).await.unwrap().len(), 2);
    assert!(store.delete_provisioned(&v.key, "1").await.unwrap());
    assert!(!store.delete_provisioned(&v.key, "1").await.unwrap());
    store.delete_function(&v.key).await.unwrap();
    assert!(store.list_provisioned(None).await.unwrap().is_empty());
}

fn publish_as(latest: &FunctionVersion, n: u64) -> FunctionVersion {
    let mut v = latest.clone();
    v.config.version = n.to_string();
    v.config.function_arn = v.key.qualified_arn(&v.config.version);
    v.config.revision_id = format!("rev-{n}");
    v
}

async fn versions_and_aliases(store: &dyn Store) {
    let v = sample_version("ver");
    store.create_function(&v, &Tags::new()).await.unwrap();
    let (one, created) = store
        .publish_version(&v.key, Some("r1"), Box::new(publish_as))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(one.config.version, "1");
    // Nothing changed: the same version comes back.
    let (again, created) = store
        .publish_version(&v.key, None, Box::new(publish_as))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.config.version, "1");
    // Settling a version (rewriting it) keeps what publishing compares against.
    store.put_version(&one, None).await.unwrap();
    let (still, created) = store
        .publish_version(&v.key, None, Box::new(publish_as))
        .await
        .unwrap();
    assert!(
        !created,
        "an unchanged $LATEST after a rewrite of version 1"
    );
    assert_eq!(still.config.version, "1");
    assert!(matches!(
        store
            .publish_version(&v.key, Some("stale"), Box::new(publish_as))
            .await,
        Err(StoreError::RevisionMismatch { .. })
    ));
    let mut changed = v.clone();
    changed.config.memory_size = 512;
    changed.config.revision_id = "r2".into();
    store.put_version(&changed, None).await.unwrap();
    let (two, _) = store
        .publish_version(&v.key, None, Box::new(publish_as))
        .await
        .unwrap();
    assert_eq!(two.config.version, "2");
    let listed: Vec<String> = store
        .list_versions(&v.key, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.config.version)
        .collect();
    assert_eq!(listed, [LATEST, "1", "2"]);
    let page: Vec<String> = store
        .list_versions(&v.key, Some(LATEST), 1)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.config.version)
        .collect();
    assert_eq!(page, ["1"]);

    let alias = lamina_types::function::AliasConfiguration {
        alias_arn: v.key.qualified_arn("live"),
        name: "live".into(),
        function_version: "1".into(),
        description: String::new(),
        routing_config: None,
        revision_id: "a1".into(),
    };
    store.create_alias(&v.key, &alias).await.unwrap();
    assert!(matches!(
        store.create_alias(&v.key, &alias).await,
        Err(StoreError::AliasExists(_))
    ));
    assert!(matches!(
        store.delete_version(&v.key, "1").await,
        Err(StoreError::VersionInUse { .. })
    ));
    let mut moved = alias.clone();
    moved.function_version = "2".into();
    moved.revision_id = "a2".into();
    assert!(matches!(
        store.update_alias(&v.key, &moved, "wrong").await,
        Err(StoreError::RevisionMismatch { .. })
    ));
    store.update_alias(&v.key, &moved, "a1").await.unwrap();
    assert_eq!(
        store
            .get_alias(&v.key, "live")
            .await
            .unwrap()
            .unwrap()
            .function_version,
        "2"
    );
    assert!(store.delete_version(&v.key, "1").await.unwrap());
    assert!(!store.delete_version(&v.key, "1").await.unwrap());
    // Numbers are never reused.
    changed.config.memory_size = 1024;
    store.put_version(&changed, None).await.unwrap();
    let (three, _) = store
        .publish_version(&v.key, None, Box::new(publish_as))
        .await
        .unwrap();
    assert_eq!(three.config.version, "3");
    assert_eq!(store.list_aliases(&v.key).await.unwrap().len(), 1);
    assert!(store.delete_alias(&v.key, "live").await.unwrap());
    assert!(store.get_alias(&v.key, "live").await.unwrap().is_none());
    store.create_alias(&v.key, &alias).await.unwrap();
    store.delete_function(&v.key).await.unwrap();
    assert!(store.list_aliases(&v.key).await.unwrap().is_empty());
    assert!(store
        .list_versions(&v.key, None, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn concurrency(store: &dyn Store) {
    let a = sample_version("ca");
    let b = sample_version("cb");
    store.create_function(&a, &Tags::new()).await.unwrap();
    store.create_function(&b, &Tags::new()).await.unwrap();
    store
        .set_reserved_concurrency(&a.key, Some(5))
        .await
        .unwrap();
    store
        .set_reserved_concurrency(&b.key, Some(7))
        .await
        .unwrap();
    let rec = store.get_function(&a.key).await.unwrap().unwrap();
    assert_eq!(rec.reserved_concurrency, Some(5));
    assert_eq!(
        store
            .total_reserved("000000000000", "us-east-1", None)
            .await
            .unwrap(),
        12
    );
    assert_eq!(
        store
            .total_reserved("000000000000", "us-east-1", Some(&a.key))
            .await
            .unwrap(),
        7
    );
    store.set_reserved_concurrency(&a.key, None).await.unwrap();
    assert_eq!(
        store
            .total_reserved("000000000000", "us-east-1", None)
            .await
            .unwrap(),
        7
    );
    for k in [&a.key, &b.key] {
        store.delete_function(k).await.unwrap();
    }
    assert!(matches!(
        store.set_reserved_concurrency(&a.key, Some(1)).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn functions(store: &dyn Store) {
    let v = sample_version("alpha");
    let g0 = store.generation();
    let mut tags = Tags::new();
    tags.insert("team".into(), "a".into());
    store.create_function(&v, &tags).await.unwrap();
    assert_ne!(store.generation(), g0, "a write must change the generation");
    assert!(matches!(
        store.create_function(&v, &Tags::new()).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let rec = store.get_function(&v.key).await.unwrap().unwrap();
    assert_eq!(rec.latest.config, v.config);
    assert_eq!(rec.tags, tags);
    assert_eq!(
        store
            .get_version(&v.key, LATEST)
            .await
            .unwrap()
            .unwrap()
            .config,
        v.config
    );
    assert!(store.get_version(&v.key, "1").await.unwrap().is_none());
    assert!(store.unsettled().await.unwrap().is_empty());
    let mut pending = v.clone();
    pending.config.state = Some("Pending".into());
    store.put_version(&pending, None).await.unwrap();
    let unsettled = store.unsettled().await.unwrap();
    assert_eq!(unsettled.len(), 1);
    assert_eq!(unsettled[0].key, v.key);
    store.put_version(&v, None).await.unwrap();
    let usage = store
        .account_usage("000000000000", "us-east-1")
        .await
        .unwrap();
    assert_eq!((usage.function_count, usage.total_code_size), (1, 10));
    assert!(store.delete_function(&v.key).await.unwrap());
    assert!(!store.delete_function(&v.key).await.unwrap());
    assert!(store.get_function(&v.key).await.unwrap().is_none());
    // Functions are per account and region.
    let mut other = sample_version("alpha");
    other.key.region = "eu-west-1".into();
    store.create_function(&other, &Tags::new()).await.unwrap();
    assert!(store.get_function(&v.key).await.unwrap().is_none());
    store.delete_function(&other.key).await.unwrap();
}

async fn revisions(store: &dyn Store) {
    let v = sample_version("beta");
    store.create_function(&v, &Tags::new()).await.unwrap();
    let mut next = v.clone();
    next.config.revision_id = "r2".into();
    next.config.memory_size = 256;
    assert!(matches!(
        store.put_version(&next, Some("wrong")).await,
        Err(StoreError::RevisionMismatch { .. })
    ));
    store.put_version(&next, Some("r1")).await.unwrap();
    let got = store.get_version(&v.key, LATEST).await.unwrap().unwrap();
    assert_eq!(got.config.memory_size, 256);
    store.put_version(&next, None).await.unwrap();
    store.delete_function(&v.key).await.unwrap();
    assert!(matches!(
        store.put_version(&next, None).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn listing(store: &dyn Store) {
    for name in ["c", "a", "b"] {
        store
            .create_function(&sample_version(name), &Tags::new())
            .await
            .unwrap();
    }
    let names = |list: Vec<FunctionVersion>| -> Vec<String> {
        list.into_iter().map(|v| v.key.name).collect()
    };
    let all = store
        .list_functions("000000000000", "us-east-1", None, 10)
        .await
        .unwrap();
    assert_eq!(names(all), ["a", "b", "c"]);
    let page = store
        .list_functions("000000000000", "us-east-1", Some("a"), 1)
        .await
        .unwrap();
    assert_eq!(names(page), ["b"]);
    for name in ["a", "b", "c"] {
        store
            .delete_function(&sample_version(name).key)
            .await
            .unwrap();
    }
}

async fn tags(store: &dyn Store) {
    let v = sample_version("tagged");
    store.create_function(&v, &Tags::new()).await.unwrap();
    let mut t = BTreeMap::new();
    t.insert("a".to_string(), "1".to_string());
    t.insert("b".to_string(), "2".to_string());
    store.tag(&v.key, &t).await.unwrap();
    store.untag(&v.key, &["a".to_string()]).await.unwrap();
    let rec = store.get_function(&v.key).await.unwrap().unwrap();
    assert_eq!(rec.tags.keys().collect::<Vec<_>>(), ["b"]);
    store.delete_function(&v.key).await.unwrap();
    assert!(matches!(
        store.tag(&v.key, &t).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn events(store: &dyn Store) {
    let key = sample_version("ev").key;
    for i in 0..3 {
        store
            .enqueue_event(&AsyncEvent {
                request_id: format!("id-{i}"),
                key: key.clone(),
                qualifier: None,
                payload: format!("{{\"n\":{i}}}").into_bytes(),
                enqueued_at_ms: i,
                attempts: 0,
                due_at_ms: i,
                throttles: 0,
            })
            .await
            .unwrap();
    }
    store.delete_event("id-1").await.unwrap();
    store.reschedule_event("id-2", 1, 3, 99).await.unwrap();
    let pending = store.pending_events().await.unwrap();
    let ids: Vec<&str> = pending.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(ids, ["id-0", "id-2"]);
    assert_eq!(pending[1].payload, b"{\"n\":2}");
    assert_eq!(
        (
            pending[1].attempts,
            pending[1].throttles,
            pending[1].due_at_ms
        ),
        (1, 3, 99)
    );
    for e in pending {
        store.delete_event(&e.request_id).await.unwrap();
    }
    // Many accepts are all stored; a duplicate id fails alone.
    let event = |id: String, i: i64| AsyncEvent {
        request_id: id,
        key: key.clone(),
        qualifier: Some("1".into()),
        payload: b"{}".to_vec(),
        enqueued_at_ms: i,
        attempts: 0,
        due_at_ms: i,
        throttles: 0,
    };
    for i in 0..200 {
        store
            .enqueue_event(&event(format!("many-{i}"), i))
            .await
            .unwrap();
    }
    assert!(store
        .enqueue_event(&event("many-0".into(), 0))
        .await
        .is_err());
    let pending = store.pending_events().await.unwrap();
    assert_eq!(pending.len(), 200);
    for e in pending {
        store.delete_event(&e.request_id).await.unwrap();
    }
    assert!(store.pending_events().await.unwrap().is_empty());
    let u = Undelivered {
        request_id: "r".into(),
        destination: "arn:aws:sqs:us-east-1:000000000000:gone".into(),
        record: "{}".into(),
        error: "queue not found".into(),
    };
    store.put_undelivered(&u).await.unwrap();
    assert_eq!(store.list_undelivered().await.unwrap(), [u]);
}

async fn event_configs(store: &dyn Store) {
    let v = sample_version("eic");
    let key = v.key.clone();
    let config = EventInvokeConfig {
        maximum_retry_attempts: Some(1),
        maximum_event_age_in_seconds: None,
        destination_config: Some(DestinationConfig::default()),
        last_modified: 1.5,
    };
    assert!(matches!(
        store.put_event_config(&key, LATEST, &config).await,
        Err(StoreError::NotFound(_))
    ));
    store.create_function(&v, &Tags::new()).await.unwrap();
    store.put_event_config(&key, LATEST, &config).await.unwrap();
    store.put_event_config(&key, "live", &config).await.unwrap();
    assert_eq!(
        store.get_event_config(&key, LATEST).await.unwrap(),
        Some(config.clone())
    );
    let qualifiers: Vec<String> = store
        .list_event_configs(&key)
        .await
        .unwrap()
        .into_iter()
        .map(|(q, _)| q)
        .collect();
    assert_eq!(qualifiers, ["$LATEST", "live"]);
    assert!(store.delete_event_config(&key, "live").await.unwrap());
    assert!(!store.delete_event_config(&key, "live").await.unwrap());
    store.delete_function(&key).await.unwrap();
    assert_eq!(store.get_event_config(&key, LATEST).await.unwrap(), None);
}

fn queue(name: &str) -> QueueRecord {
    QueueRecord {
        key: QueueKey {
            account: "000000000000".into(),
            region: "us-east-1".into(),
            name: name.into(),
        },
        attributes: BTreeMap::from([("VisibilityTimeout".to_string(), "30".to_string())]),
        created_at_s: 10,
        modified_at_s: 10,
    }
}

fn message(id: &str, delay_ms: i64) -> NewMessage {
    NewMessage {
        message_id: id.into(),
        body: format!("body of {id}"),
        attributes: "{}".into(),
        delay_ms,
    }
}

fn receive(max: usize, visibility_ms: i64, now_ms: i64) -> ReceiveOptions {
    ReceiveOptions {
        max,
        visibility_ms,
        now_ms,
        retention_ms: 1_000_000,
        redrive: None,
    }
}

async fn queues(store: &dyn Store) {
    let (q, created) = store.create_queue(&queue("qa")).await.unwrap();
    assert!(created);
    let mut other = queue("qa");
    other.attributes.clear();
    let (existing, created) = store.create_queue(&other).await.unwrap();
    assert!(!created);
    assert_eq!(existing, q);
    store.create_queue(&queue("qb")).await.unwrap();
    store.create_queue(&queue("x")).await.unwrap();
    let names = |v: Vec<QueueRecord>| v.into_iter().map(|q| q.key.name).collect::<Vec<_>>();
    assert_eq!(
        names(
            store
                .list_queues("000000000000", "us-east-1", "q")
                .await
                .unwrap()
        ),
        ["qa", "qb"]
    );
    assert!(store
        .list_queues("000000000000", "eu-west-1", "")
        .await
        .unwrap()
        .is_empty());
    store
        .set_queue_attributes(
            &q.key,
            &BTreeMap::from([
                ("DelaySeconds".to_string(), "5".to_string()),
                ("VisibilityTimeout".to_string(), String::new()),
            ]),
            20,
        )
        .await
        .unwrap();
    let got = store.get_queue(&q.key).await.unwrap().unwrap();
    assert_eq!(
        got.attributes,
        BTreeMap::from([("DelaySeconds".to_string(), "5".to_string())])
    );
    assert_eq!(got.modified_at_s, 20);
    for name in ["qa", "qb", "x"] {
        assert!(store.delete_queue(&queue(name).key).await.unwrap());
    }
    assert!(!store.delete_queue(&q.key).await.unwrap());
    assert!(matches!(
        store.send_messages(&q.key, &[message("m", 0)], 0).await,
        Err(StoreError::QueueNotFound(_))
    ));
    assert!(matches!(
        store.receive_messages(&q.key, &receive(1, 1, 0)).await,
        Err(StoreError::QueueNotFound(_))
    ));
}

async fn messages(store: &dyn Store) {
    let q = store.create_queue(&queue("msgs")).await.unwrap().0.key;
    store
        .send_messages(
            &q,
            &[message("a", 0), message("b", 0), message("c", 500)],
            1_000,
        )
        .await
        .unwrap();
    let counts = store.queue_counts(&q, 1_000).await.unwrap();
    assert_eq!(
        (counts.visible, counts.in_flight, counts.delayed),
        (2, 0, 1)
    );
    let got = store
        .receive_messages(&q, &receive(10, 100, 1_000))
        .await
        .unwrap();
    let ids: Vec<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(got[0].body, "body of a");
    assert_eq!(
        (
            got[0].receive_count,
            got[0].sent_at_ms,
            got[0].first_received_at_ms
        ),
        (1, 1_000, 1_000)
    );
    let counts = store.queue_counts(&q, 1_050).await.unwrap();
    assert_eq!(
        (counts.visible, counts.in_flight, counts.delayed),
        (0, 2, 1)
    );
    // Invisible until the timeout passes; then back with a new handle and count 2.
    assert!(store
        .receive_messages(&q, &receive(10, 100, 1_050))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .delete_message(&q, &got[0].receipt_handle)
            .await
            .unwrap(),
        HandleOutcome::Done
    );
    let again = store
        .receive_messages(&q, &receive(10, 100, 1_600))
        .await
        .unwrap();
    let ids: Vec<&str> = again.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids, ["b", "c"]);
    assert_eq!(again[0].receive_count, 2);
    assert_eq!(again[0].first_received_at_ms, 1_000);
    assert_ne!(again[0].receipt_handle, got[1].receipt_handle);
    // Visibility changes need the current handle of an in-flight message.
    assert_eq!(
        store
            .change_visibility(&q, &got[1].receipt_handle, 0, 1_600)
            .await
            .unwrap(),
        HandleOutcome::NotInFlight
    );
    assert_eq!(
        store
            .change_visibility(&q, &again[0].receipt_handle, 0, 1_600)
            .await
            .unwrap(),
        HandleOutcome::Done
    );
    assert_eq!(
        store
            .change_visibility(&q, "garbage", 0, 1_600)
            .await
            .unwrap(),
        HandleOutcome::Invalid
    );
    assert_eq!(
        store.delete_message(&q, "garbage").await.unwrap(),
        HandleOutcome::Invalid
    );
    let b = store
        .receive_messages(&q, &receive(1, 100, 1_600))
        .await
        .unwrap();
    assert_eq!(b[0].message_id, "b");
    // Retention: messages older than it are gone.
    let mut old = receive(10, 100, 10_000);
    old.retention_ms = 1;
    assert!(store.receive_messages(&q, &old).await.unwrap().is_empty());
    assert_eq!(store.queue_counts(&q, 10_000).await.unwrap().in_flight, 0);
    store
        .send_messages(&q, &[message("d", 0)], 20_000)
        .await
        .unwrap();
    store.purge_queue(&q).await.unwrap();
    assert_eq!(store.queue_counts(&q, 20_000).await.unwrap().visible, 0);
    store.delete_queue(&q).await.unwrap();
}

async fn redrive(store: &dyn Store) {
    let src = store.create_queue(&queue("src")).await.unwrap().0.key;
    let dlq = store.create_queue(&queue("dlq")).await.unwrap().0.key;
    store
        .send_messages(&src, &[message("m", 0)], 0)
        .await
        .unwrap();
    let mut opts = receive(1, 10, 0);
    opts.redrive = Some((dlq.clone(), 2));
    for now in [0, 100] {
        opts.now_ms = now;
        assert_eq!(store.receive_messages(&src, &opts).await.unwrap().len(), 1);
    }
    opts.now_ms = 200;
    assert!(store
        .receive_messages(&src, &opts)
        .await
        .unwrap()
        .is_empty());
    let moved = store
        .receive_messages(&dlq, &receive(1, 10, 200))
        .await
        .unwrap();
    assert_eq!(moved[0].message_id, "m");
    assert_eq!(moved[0].receive_count, 1);
    store.delete_queue(&src).await.unwrap();
    store.delete_queue(&dlq).await.unwrap();
    assert_eq!(
        store
            .queue_counts(&dlq, 0)
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string(),
        "queue not found: arn:aws:sqs:us-east-1:000000000000:dlq"
    );
}
