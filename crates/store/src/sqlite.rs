//! The embedded backend: one SQLite file (`lamina.db`) in WAL mode with `synchronous=FULL`.
//!
//! One connection behind a mutex; every call runs on Tokio's blocking pool. Accepted async events
//! and their deletions go through a second connection that commits them in groups
//! ([`crate::sqlite_queue`]). Schema changes are
//! numbered migrations applied in order and recorded in `PRAGMA user_version`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lamina_types::asynchronous::{EventInvokeConfig, QueueKey};
use lamina_types::function::{
    AliasConfiguration, FunctionConfiguration, FunctionRecord, FunctionVersion, LayerCode,
    ProvisionedConcurrencyConfig, Tags,
};
use lamina_types::layer::{LayerVersion, StoredLayerVersion};
use lamina_types::names::{FunctionKey, LATEST};
use rusqlite::{params, Connection, OptionalExtension};

use crate::blobs::Blobs;
use crate::sqlite_queue::{self as q, EventWriter};
use crate::{
    AccountUsage, AsyncEvent, HandleOutcome, MakeLayerVersion, MakeVersion, NewMessage,
    QueueCounts, QueueRecord, ReceiveOptions, ReceivedMessage, Store, StoreError, Undelivered,
};

/// Schema migrations; entry `i` moves the database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE functions (
    account TEXT NOT NULL,
    region  TEXT NOT NULL,
    name    TEXT NOT NULL,
    tags    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (account, region, name)
);
CREATE TABLE versions (
    account   TEXT NOT NULL,
    region    TEXT NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    config    TEXT NOT NULL,
    code_hex  TEXT NOT NULL,
    code_size INTEGER NOT NULL,
    PRIMARY KEY (account, region, name, version),
    FOREIGN KEY (account, region, name) REFERENCES functions ON DELETE CASCADE
);
CREATE TABLE async_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL UNIQUE,
    account     TEXT NOT NULL,
    region      TEXT NOT NULL,
    name        TEXT NOT NULL,
    qualifier   TEXT,
    payload     BLOB NOT NULL,
    enqueued_at INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0
);
"#,
    r#"
ALTER TABLE functions ADD COLUMN next_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE functions ADD COLUMN reserved_concurrency INTEGER;
ALTER TABLE versions ADD COLUMN source_fingerprint TEXT;
CREATE TABLE aliases (
    account TEXT NOT NULL,
    region  TEXT NOT NULL,
    name    TEXT NOT NULL,
    alias   TEXT NOT NULL,
    config  TEXT NOT NULL,
    PRIMARY KEY (account, region, name, alias),
    FOREIGN KEY (account, region, name) REFERENCES functions ON DELETE CASCADE
);
"#,
    r#"
CREATE TABLE provisioned (
    account   TEXT NOT NULL,
    region    TEXT NOT NULL,
    name      TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    config    TEXT NOT NULL,
    PRIMARY KEY (account, region, name, qualifier),
    FOREIGN KEY (account, region, name) REFERENCES functions ON DELETE CASCADE
);
"#,
    r#"
ALTER TABLE versions ADD COLUMN layer_hexes TEXT NOT NULL DEFAULT '[]';
CREATE TABLE layer_names (
    account      TEXT NOT NULL,
    region       TEXT NOT NULL,
    name         TEXT NOT NULL,
    next_version INTEGER NOT NULL,
    PRIMARY KEY (account, region, name)
);
CREATE TABLE layer_versions (
    account         TEXT NOT NULL,
    region          TEXT NOT NULL,
    name            TEXT NOT NULL,
    version         INTEGER NOT NULL,
    config          TEXT NOT NULL,
    code_hex        TEXT NOT NULL,
    policy          TEXT,
    policy_revision TEXT NOT NULL,
    PRIMARY KEY (account, region, name, version)
);
"#,
    r#"
ALTER TABLE async_events ADD COLUMN due_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE async_events ADD COLUMN throttles INTEGER NOT NULL DEFAULT 0;
CREATE TABLE event_configs (
    account   TEXT NOT NULL,
    region    TEXT NOT NULL,
    name      TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    config    TEXT NOT NULL,
    PRIMARY KEY (account, region, name, qualifier),
    FOREIGN KEY (account, region, name) REFERENCES functions ON DELETE CASCADE
);
CREATE TABLE undelivered (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL,
    destination TEXT NOT NULL,
    record      TEXT NOT NULL,
    error       TEXT NOT NULL
);
CREATE TABLE queues (
    account     TEXT NOT NULL,
    region      TEXT NOT NULL,
    name        TEXT NOT NULL,
    attributes  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    PRIMARY KEY (account, region, name)
);
CREATE TABLE queue_messages (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    account           TEXT NOT NULL,
    region            TEXT NOT NULL,
    queue             TEXT NOT NULL,
    message_id        TEXT NOT NULL,
    body              TEXT NOT NULL,
    attributes        TEXT NOT NULL,
    sent_at           INTEGER NOT NULL,
    visible_at        INTEGER NOT NULL,
    receive_count     INTEGER NOT NULL DEFAULT 0,
    first_received_at INTEGER,
    receipt           TEXT,
    FOREIGN KEY (account, region, queue) REFERENCES queues ON DELETE CASCADE
);
CREATE INDEX queue_messages_by_visibility ON queue_messages (account, region, queue, visible_at);
"#,
];

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    events: EventWriter,
    activity: Arc<tokio::sync::Notify>,
    blobs: Blobs,
    generation: Arc<AtomicU64>,
    path: PathBuf,
}

impl SqliteStore {
    /// Open (or create) `lamina.db` and the package directories under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Io {
            path: data_dir.display().to_string(),
            source: e,
        })?;
        let path = data_dir.join("lamina.db");
        let mut conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Two connections write (this one and the event writer's): a deferred transaction that
        // read first could not upgrade to a writer once the other one committed, and would fail
        // with SQLITE_BUSY at once instead of waiting.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        migrate(&mut conn)?;
        Ok(SqliteStore {
            events: EventWriter::start(&path)?,
            activity: Arc::new(tokio::sync::Notify::new()),
            conn: Arc::new(Mutex::new(conn)),
            blobs: Blobs::open(data_dir)?,
            generation: Arc::new(AtomicU64::new(1)),
            path,
        })
    }

    /// The package directory.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` with the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Blobs) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard, &blobs)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn decode_version(
    blobs: &Blobs,
    key: FunctionKey,
    config: &str,
    code_hex: String,
    layer_hexes: &str,
) -> Result<FunctionVersion, StoreError> {
    let corrupt = |source| StoreError::Corrupt {
        key: key.arn(),
        source,
    };
    let config: FunctionConfiguration = serde_json::from_str(config).map_err(corrupt)?;
    let hexes: Vec<String> = serde_json::from_str(layer_hexes).map_err(corrupt)?;
    Ok(FunctionVersion {
        code_dir: blobs.code_dir(&code_hex),
        layers: hexes
            .into_iter()
            .map(|h| LayerCode {
                dir: blobs.code_dir(&h),
                sha256_hex: h,
            })
            .collect(),
        key,
        config,
        code_sha256_hex: code_hex,
    })
}

fn encode(v: &FunctionVersion) -> String {
    // Serialising a plain struct of strings, numbers and JSON values cannot fail.
    serde_json::to_string(&v.config).unwrap_or_default()
}

fn encode_layers(v: &FunctionVersion) -> String {
    let hexes: Vec<&str> = v.layers.iter().map(|l| l.sha256_hex.as_str()).collect();
    serde_json::to_string(&hexes).unwrap_or_else(|_| "[]".into())
}

fn decode_tags(key: &FunctionKey, text: &str) -> Result<Tags, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
        key: key.arn(),
        source,
    })
}

fn read_version(
    conn: &Connection,
    blobs: &Blobs,
    key: &FunctionKey,
    version: &str,
) -> Result<Option<FunctionVersion>, StoreError> {
    let row: Option<(String, String, String)> = conn
        .query_row(
            "SELECT config, code_hex, layer_hexes FROM versions WHERE account=?1 AND region=?2 AND name=?3 AND version=?4",
            params![key.account, key.region, key.name, version],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    row.map(|(config, hex, layers)| decode_version(blobs, key.clone(), &config, hex, &layers))
        .transpose()
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_function(
        &self,
        latest: &FunctionVersion,
        tags: &Tags,
    ) -> Result<(), StoreError> {
        let v = latest.clone();
        let tags = serde_json::to_string(tags).unwrap_or_else(|_| "{}".into());
        self.with(move |conn, _| {
            let tx = conn.transaction()?;
            let k = &v.key;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO functions (account, region, name, tags) VALUES (?1, ?2, ?3, ?4)",
                params![k.account, k.region, k.name, tags],
            )?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(k.name.clone()));
            }
            tx.execute(
                "INSERT INTO versions (account, region, name, version, config, code_hex, code_size, layer_hexes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![k.account, k.region, k.name, v.config.version, encode(&v), v.code_sha256_hex, v.config.code_size as i64, encode_layers(&v)],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        self.bump();
        Ok(())
    }

    async fn get_function(&self, key: &FunctionKey) -> Result<Option<FunctionRecord>, StoreError> {
        let key = key.clone();
        self.with(move |conn, blobs| {
            let row: Option<(String, Option<u32>)> = conn
                .query_row(
                    "SELECT tags, reserved_concurrency FROM functions WHERE account=?1 AND region=?2 AND name=?3",
                    params![key.account, key.region, key.name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((tags, reserved_concurrency)) = row else {
                return Ok(None);
            };
            let Some(latest) = read_version(conn, blobs, &key, LATEST)? else {
                return Ok(None);
            };
            Ok(Some(FunctionRecord {
                tags: decode_tags(&key, &tags)?,
                latest,
                reserved_concurrency,
            }))
        })
        .await
    }

    async fn get_version(
        &self,
        key: &FunctionKey,
        version: &str,
    ) -> Result<Option<FunctionVersion>, StoreError> {
        let key = key.clone();
        let version = version.to_string();
        self.with(move |conn, blobs| read_version(conn, blobs, &key, &version))
            .await
    }

    async fn put_version(
        &self,
        version: &FunctionVersion,
        expected_revision: Option<&str>,
    ) -> Result<(), StoreError> {
        let v = version.clone();
        let expected = expected_revision.map(str::to_string);
        self.with(move |conn, blobs| {
            let tx = conn.transaction()?;
            let k = &v.key;
            let exists: bool = tx
                .query_row(
                    "SELECT 1 FROM functions WHERE account=?1 AND region=?2 AND name=?3",
                    params![k.account, k.region, k.name],
                    |_| Ok(true),
                )
                .optional()?
                .unwrap_or(false);
            if !exists {
                return Err(StoreError::NotFound(k.arn()));
            }
            if let Some(expected) = expected {
                let stored = read_version(&tx, blobs, k, &v.config.version)?
                    .map(|s| s.config.revision_id)
                    .unwrap_or_default();
                if stored != expected {
                    return Err(StoreError::RevisionMismatch {
                        arn: k.arn(),
                        stored,
                    });
                }
            }
            tx.execute(
                // An upsert, not INSERT OR REPLACE: a replace would drop the columns it does not
                // name (a published version's source fingerprint).
                "INSERT INTO versions (account, region, name, version, config, code_hex, code_size, layer_hexes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (account, region, name, version) DO UPDATE SET config=excluded.config, code_hex=excluded.code_hex, code_size=excluded.code_size, layer_hexes=excluded.layer_hexes",
                params![k.account, k.region, k.name, v.config.version, encode(&v), v.code_sha256_hex, v.config.code_size as i64, encode_layers(&v)],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        self.bump();
        Ok(())
    }

    async fn list_functions(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FunctionVersion>, StoreError> {
        let (account, region) = (account.to_string(), region.to_string());
        let after = after.unwrap_or("").to_string();
        self.with(move |conn, blobs| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, config, code_hex, layer_hexes FROM versions WHERE account=?1 AND region=?2 AND version=?3 AND name > ?4 ORDER BY name LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![account, region, LATEST, after, limit as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (name, config, hex, layers) = row?;
                let key = FunctionKey {
                    account: account.clone(),
                    region: region.clone(),
                    name,
                };
                out.push(decode_version(blobs, key, &config, hex, &layers)?);
            }
            Ok(out)
        })
        .await
    }

    async fn unsettled(&self) -> Result<Vec<FunctionVersion>, StoreError> {
        self.with(|conn, blobs| {
            let mut stmt = conn.prepare(
                "SELECT account, region, name, config, code_hex, layer_hexes FROM versions \
                 WHERE json_extract(config, '$.State')='Pending' OR json_extract(config, '$.LastUpdateStatus')='InProgress'",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    FunctionKey {
                        account: r.get(0)?,
                        region: r.get(1)?,
                        name: r.get(2)?,
                    },
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (key, config, hex, layers) = row?;
                out.push(decode_version(blobs, key, &config, hex, &layers)?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_function(&self, key: &FunctionKey) -> Result<bool, StoreError> {
        let key = key.clone();
        let deleted = self
            .with(move |conn, _| {
                let n = conn.execute(
                    "DELETE FROM functions WHERE account=?1 AND region=?2 AND name=?3",
                    params![key.account, key.region, key.name],
                )?;
                Ok(n > 0)
            })
            .await?;
        self.bump();
        Ok(deleted)
    }

    async fn tag(&self, key: &FunctionKey, tags: &Tags) -> Result<(), StoreError> {
        let key = key.clone();
        let add = tags.clone();
        self.with(move |conn, _| update_tags(conn, &key, |t| t.extend(add)))
            .await
    }

    async fn untag(&self, key: &FunctionKey, keys: &[String]) -> Result<(), StoreError> {
        let key = key.clone();
        let keys = keys.to_vec();
        self.with(move |conn, _| {
            update_tags(conn, &key, |t| {
                for k in &keys {
                    t.remove(k);
                }
            })
        })
        .await
    }

    async fn account_usage(&self, account: &str, region: &str) -> Result<AccountUsage, StoreError> {
        let (account, region) = (account.to_string(), region.to_string());
        self.with(move |conn, _| {
            let (count, size): (i64, i64) = conn.query_row(
                "SELECT (SELECT COUNT(*) FROM functions WHERE account=?1 AND region=?2), \
                        (SELECT COALESCE(SUM(code_size), 0) FROM versions WHERE account=?1 AND region=?2)",
                params![account, region],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(AccountUsage {
                function_count: count as u64,
                total_code_size: size as u64,
            })
        })
        .await
    }

    async fn enqueue_event(&self, event: &AsyncEvent) -> Result<(), StoreError> {
        self.events.insert(event.clone()).await
    }

    async fn pending_events(&self) -> Result<Vec<AsyncEvent>, StoreError> {
        self.with(|conn, _| q::pending_events(conn)).await
    }

    async fn delete_event(&self, request_id: &str) -> Result<(), StoreError> {
        self.events.delete(request_id.to_string()).await
    }

    async fn reschedule_event(
        &self,
        request_id: &str,
        attempts: u32,
        throttles: u32,
        due_at_ms: i64,
    ) -> Result<(), StoreError> {
        let id = request_id.to_string();
        self.with(move |conn, _| q::reschedule_event(conn, &id, attempts, throttles, due_at_ms))
            .await
    }

    async fn put_undelivered(&self, u: &Undelivered) -> Result<(), StoreError> {
        let u = u.clone();
        self.with(move |conn, _| q::put_undelivered(conn, &u)).await
    }

    async fn list_undelivered(&self) -> Result<Vec<Undelivered>, StoreError> {
        self.with(|conn, _| q::list_undelivered(conn)).await
    }

    async fn put_event_config(
        &self,
        key: &FunctionKey,
        qualifier: &str,
        config: &EventInvokeConfig,
    ) -> Result<(), StoreError> {
        let (key, qualifier, config) = (key.clone(), qualifier.to_string(), config.clone());
        self.with(move |conn, _| q::put_event_config(conn, &key, &qualifier, &config))
            .await?;
        self.bump();
        Ok(())
    }

    async fn get_event_config(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<Option<EventInvokeConfig>, StoreError> {
        let (key, qualifier) = (key.clone(), qualifier.to_string());
        self.with(move |conn, _| q::get_event_config(conn, &key, &qualifier))
            .await
    }

    async fn delete_event_config(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<bool, StoreError> {
        let (key, qualifier) = (key.clone(), qualifier.to_string());
        let deleted = self
            .with(move |conn, _| q::delete_event_config(conn, &key, &qualifier))
            .await?;
        self.bump();
        Ok(deleted)
    }

    async fn list_event_configs(
        &self,
        key: &FunctionKey,
    ) -> Result<Vec<(String, EventInvokeConfig)>, StoreError> {
        let key = key.clone();
        self.with(move |conn, _| q::list_event_configs(conn, &key))
            .await
    }

    async fn create_queue(&self, queue: &QueueRecord) -> Result<(QueueRecord, bool), StoreError> {
        let queue = queue.clone();
        self.with(move |conn, _| q::create_queue(conn, &queue))
            .await
    }

    async fn get_queue(&self, key: &QueueKey) -> Result<Option<QueueRecord>, StoreError> {
        let key = key.clone();
        self.with(move |conn, _| q::read_queue(conn, &key)).await
    }

    async fn list_queues(
        &self,
        account: &str,
        region: &str,
        prefix: &str,
    ) -> Result<Vec<QueueRecord>, StoreError> {
        let (a, r, p) = (account.to_string(), region.to_string(), prefix.to_string());
        self.with(move |conn, _| q::list_queues(conn, &a, &r, &p))
            .await
    }

    async fn set_queue_attributes(
        &self,
        key: &QueueKey,
        attributes: &BTreeMap<String, String>,
        now_s: i64,
    ) -> Result<(), StoreError> {
        let (key, attributes) = (key.clone(), attributes.clone());
        self.with(move |conn, _| q::set_queue_attributes(conn, &key, &attributes, now_s))
            .await
    }

    async fn delete_queue(&self, key: &QueueKey) -> Result<bool, StoreError> {
        let key = key.clone();
        self.with(move |conn, _| q::delete_queue(conn, &key)).await
    }

    async fn purge_queue(&self, key: &QueueKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.with(move |conn, _| q::purge_queue(conn, &key)).await
    }

    async fn queue_counts(&self, key: &QueueKey, now_ms: i64) -> Result<QueueCounts, StoreError> {
        let key = key.clone();
        self.with(move |conn, _| q::queue_counts(conn, &key, now_ms))
            .await
    }

    async fn send_messages(
        &self,
        key: &QueueKey,
        messages: &[NewMessage],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let (key, messages) = (key.clone(), messages.to_vec());
        self.with(move |conn, _| q::send_messages(conn, &key, &messages, now_ms))
            .await?;
        self.activity.notify_waiters();
        Ok(())
    }

    async fn receive_messages(
        &self,
        key: &QueueKey,
        opts: &ReceiveOptions,
    ) -> Result<Vec<ReceivedMessage>, StoreError> {
        let (key, opts) = (key.clone(), opts.clone());
        self.with(move |conn, _| q::receive_messages(conn, &key, &opts))
            .await
    }

    async fn delete_message(
        &self,
        key: &QueueKey,
        receipt_handle: &str,
    ) -> Result<HandleOutcome, StoreError> {
        let (key, handle) = (key.clone(), receipt_handle.to_string());
        self.with(move |conn, _| q::delete_message(conn, &key, &handle))
            .await
    }

    async fn change_visibility(
        &self,
        key: &QueueKey,
        receipt_handle: &str,
        visibility_ms: i64,
        now_ms: i64,
    ) -> Result<HandleOutcome, StoreError> {
        let (key, handle) = (key.clone(), receipt_handle.to_string());
        let outcome = self
            .with(move |conn, _| q::change_visibility(conn, &key, &handle, visibility_ms, now_ms))
            .await?;
        self.activity.notify_waiters();
        Ok(outcome)
    }

    async fn publish_version(
        &self,
        key: &FunctionKey,
        expected_revision: Option<&str>,
        make: MakeVersion,
    ) -> Result<(FunctionVersion, bool), StoreError> {
        let key = key.clone();
        let expected = expected_revision.map(str::to_string);
        let out = self
            .with(move |conn, blobs| {
                let tx = conn.transaction()?;
                let next: Option<i64> = tx
                    .query_row(
                        "SELECT next_version FROM functions WHERE account=?1 AND region=?2 AND name=?3",
                        params![key.account, key.region, key.name],
                        |r| r.get(0),
                    )
                    .optional()?;
                let (Some(next), Some(latest)) = (next, read_version(&tx, blobs, &key, LATEST)?)
                else {
                    return Err(StoreError::NotFound(key.arn()));
                };
                if let Some(expected) = expected {
                    if latest.config.revision_id != expected {
                        return Err(StoreError::RevisionMismatch {
                            arn: key.arn(),
                            stored: latest.config.revision_id,
                        });
                    }
                }
                let fingerprint = latest.fingerprint();
                let last: Option<(String, String, String, Option<String>)> = tx
                    .query_row(
                        "SELECT config, code_hex, layer_hexes, source_fingerprint FROM versions \
                         WHERE account=?1 AND region=?2 AND name=?3 AND version<>?4 \
                         ORDER BY CAST(version AS INTEGER) DESC LIMIT 1",
                        params![key.account, key.region, key.name, LATEST],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                if let Some((config, hex, layers, source)) = last {
                    if source.as_deref() == Some(fingerprint.as_str()) {
                        let v = decode_version(blobs, key.clone(), &config, hex, &layers)?;
                        return Ok((v, false));
                    }
                }
                let version = make(&latest, next as u64);
                tx.execute(
                    "INSERT INTO versions (account, region, name, version, config, code_hex, code_size, source_fingerprint, layer_hexes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![key.account, key.region, key.name, version.config.version, encode(&version), version.code_sha256_hex, version.config.code_size as i64, fingerprint, encode_layers(&version)],
                )?;
                tx.execute(
                    "UPDATE functions SET next_version=?4 WHERE account=?1 AND region=?2 AND name=?3",
                    params![key.account, key.region, key.name, next + 1],
                )?;
                tx.commit()?;
                Ok((version, true))
            })
            .await?;
        self.bump();
        Ok(out)
    }

    async fn list_versions(
        &self,
        key: &FunctionKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FunctionVersion>, StoreError> {
        let key = key.clone();
        // $LATEST sorts first (-1), then versions by number.
        let after: i64 = match after {
            None => -2,
            Some(LATEST) => -1,
            Some(v) => v.parse().unwrap_or(i64::MAX),
        };
        self.with(move |conn, blobs| {
            let mut stmt = conn.prepare_cached(
                "SELECT config, code_hex, layer_hexes, CASE WHEN version=?4 THEN -1 ELSE CAST(version AS INTEGER) END AS k \
                 FROM versions WHERE account=?1 AND region=?2 AND name=?3 AND k > ?5 ORDER BY k LIMIT ?6",
            )?;
            let rows = stmt.query_map(
                params![key.account, key.region, key.name, LATEST, after, limit as i64],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )?;
            let mut out = Vec::new();
            for row in rows {
                let (config, hex, layers) = row?;
                out.push(decode_version(blobs, key.clone(), &config, hex, &layers)?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_version(&self, key: &FunctionKey, version: &str) -> Result<bool, StoreError> {
        let key = key.clone();
        let version = version.to_string();
        let deleted = self
            .with(move |conn, _| {
                let tx = conn.transaction()?;
                let users: Vec<String> = read_aliases(&tx, &key)?
                    .into_iter()
                    .filter(|a| a.versions().any(|v| v == version))
                    .map(|a| a.name)
                    .collect();
                if !users.is_empty() {
                    return Err(StoreError::VersionInUse {
                        arn: key.arn(),
                        version,
                        aliases: users.join(", "),
                    });
                }
                let n = tx.execute(
                    "DELETE FROM versions WHERE account=?1 AND region=?2 AND name=?3 AND version=?4",
                    params![key.account, key.region, key.name, version],
                )?;
                tx.commit()?;
                Ok(n > 0)
            })
            .await?;
        self.bump();
        Ok(deleted)
    }

    async fn create_alias(
        &self,
        key: &FunctionKey,
        alias: &AliasConfiguration,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        let alias = alias.clone();
        self.with(move |conn, _| {
            let tx = conn.transaction()?;
            ensure_function(&tx, &key)?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO aliases (account, region, name, alias, config) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key.account, key.region, key.name, alias.name, encode_alias(&alias)],
            )?;
            if inserted == 0 {
                return Err(StoreError::AliasExists(alias.alias_arn));
            }
            tx.commit()?;
            Ok(())
        })
        .await?;
        self.bump();
        Ok(())
    }

    async fn get_alias(
        &self,
        key: &FunctionKey,
        name: &str,
    ) -> Result<Option<AliasConfiguration>, StoreError> {
        let key = key.clone();
        let name = name.to_string();
        self.with(move |conn, _| read_alias(conn, &key, &name))
            .await
    }

    async fn update_alias(
        &self,
        key: &FunctionKey,
        alias: &AliasConfiguration,
        expected_revision: &str,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        let alias = alias.clone();
        let expected = expected_revision.to_string();
        self.with(move |conn, _| {
            let tx = conn.transaction()?;
            let Some(stored) = read_alias(&tx, &key, &alias.name)? else {
                return Err(StoreError::AliasNotFound(alias.alias_arn));
            };
            if stored.revision_id != expected {
                return Err(StoreError::RevisionMismatch {
                    arn: alias.alias_arn,
                    stored: stored.revision_id,
                });
            }
            tx.execute(
                "UPDATE aliases SET config=?5 WHERE account=?1 AND region=?2 AND name=?3 AND alias=?4",
                params![key.account, key.region, key.name, alias.name, encode_alias(&alias)],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        self.bump();
        Ok(())
    }

    async fn delete_alias(&self, key: &FunctionKey, name: &str) -> Result<bool, StoreError> {
        let key = key.clone();
        let name = name.to_string();
        let deleted = self
            .with(move |conn, _| {
                let n = conn.execute(
                    "DELETE FROM aliases WHERE account=?1 AND region=?2 AND name=?3 AND alias=?4",
                    params![key.account, key.region, key.name, name],
                )?;
                Ok(n > 0)
            })
            .await?;
        self.bump();
        Ok(deleted)
    }

    async fn list_aliases(&self, key: &FunctionKey) -> Result<Vec<AliasConfiguration>, StoreError> {
        let key = key.clone();
        self.with(move |conn, _| read_aliases(conn, &key)).await
    }

    async fn set_reserved_concurrency(
        &self,
        key: &FunctionKey,
        reserved: Option<u32>,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        self.with(move |conn, _| {
            let n = conn.execute(
                "UPDATE functions SET reserved_concurrency=?4 WHERE account=?1 AND region=?2 AND name=?3",
                params![key.account, key.region, key.name, reserved],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(key.arn()));
            }
            Ok(())
        })
        .await?;
        self.bump();
        Ok(())
    }

    async fn total_reserved(
        &self,
        account: &str,
        region: &str,
        except: Option<&FunctionKey>,
    ) -> Result<u64, StoreError> {
        let (account, region) = (account.to_string(), region.to_string());
        let except = except.map(|k| k.name.clone()).unwrap_or_default();
        self.with(move |conn, _| {
            let total: i64 = conn.query_row(
                "SELECT COALESCE(SUM(reserved_concurrency), 0) FROM functions WHERE account=?1 AND region=?2 AND name<>?3",
                params![account, region, except],
                |r| r.get(0),
            )?;
            Ok(total as u64)
        })
        .await
    }

    async fn put_provisioned(
        &self,
        key: &FunctionKey,
        config: &ProvisionedConcurrencyConfig,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        let config = config.clone();
        self.with(move |conn, _| {
            let tx = conn.transaction()?;
            ensure_function(&tx, &key)?;
            tx.execute(
                "INSERT INTO provisioned (account, region, name, qualifier, config) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (account, region, name, qualifier) DO UPDATE SET config=excluded.config",
                params![
                    key.account,
                    key.region,
                    key.name,
                    config.qualifier,
                    serde_json::to_string(&config).unwrap_or_default()
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_provisioned(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<Option<ProvisionedConcurrencyConfig>, StoreError> {
        let key = key.clone();
        let qualifier = qualifier.to_string();
        self.with(move |conn, _| {
            let text: Option<String> = conn
                .query_row(
                    "SELECT config FROM provisioned WHERE account=?1 AND region=?2 AND name=?3 AND qualifier=?4",
                    params![key.account, key.region, key.name, qualifier],
                    |r| r.get(0),
                )
                .optional()?;
            text.map(|t| decode_provisioned(&key, &qualifier, &t))
                .transpose()
        })
        .await
    }

    async fn delete_provisioned(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<bool, StoreError> {
        let key = key.clone();
        let qualifier = qualifier.to_string();
        self.with(move |conn, _| {
            let n = conn.execute(
                "DELETE FROM provisioned WHERE account=?1 AND region=?2 AND name=?3 AND qualifier=?4",
                params![key.account, key.region, key.name, qualifier],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_provisioned(
        &self,
        key: Option<&FunctionKey>,
    ) -> Result<Vec<(FunctionKey, ProvisionedConcurrencyConfig)>, StoreError> {
        let key = key.cloned();
        self.with(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT account, region, name, qualifier, config FROM provisioned \
                 WHERE ?1 IS NULL OR (account=?1 AND region=?2 AND name=?3) \
                 ORDER BY account, region, name, qualifier",
            )?;
            let (a, r, n) = match &key {
                Some(k) => (
                    Some(k.account.clone()),
                    Some(k.region.clone()),
                    Some(k.name.clone()),
                ),
                None => (None, None, None),
            };
            let rows = stmt.query_map(params![a, r, n], |row| {
                Ok((
                    FunctionKey {
                        account: row.get(0)?,
                        region: row.get(1)?,
                        name: row.get(2)?,
                    },
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (k, q, text) = row?;
                let c = decode_provisioned(&k, &q, &text)?;
                out.push((k, c));
            }
            Ok(out)
        })
        .await
    }

    async fn publish_layer_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        make: MakeLayerVersion,
    ) -> Result<StoredLayerVersion, StoreError> {
        let (account, region, name) = (account.to_string(), region.to_string(), name.to_string());
        self.with(move |conn, _| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO layer_names (account, region, name, next_version) VALUES (?1, ?2, ?3, 1)",
                params![account, region, name],
            )?;
            let next: i64 = tx.query_row(
                "SELECT next_version FROM layer_names WHERE account=?1 AND region=?2 AND name=?3",
                params![account, region, name],
                |r| r.get(0),
            )?;
            let layer = make(next as u64);
            tx.execute(
                "INSERT INTO layer_versions (account, region, name, version, config, code_hex, policy, policy_revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    account,
                    region,
                    name,
                    next,
                    serde_json::to_string(&layer.layer).unwrap_or_default(),
                    layer.code_sha256_hex,
                    layer.policy,
                    layer.policy_revision
                ],
            )?;
            tx.execute(
                "UPDATE layer_names SET next_version=?4 WHERE account=?1 AND region=?2 AND name=?3",
                params![account, region, name, next + 1],
            )?;
            tx.commit()?;
            Ok(layer)
        })
        .await
    }

    async fn get_layer_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: u64,
    ) -> Result<Option<StoredLayerVersion>, StoreError> {
        let (account, region, name) = (account.to_string(), region.to_string(), name.to_string());
        self.with(move |conn, _| {
            let row = conn
                .query_row(
                    "SELECT config, code_hex, policy, policy_revision FROM layer_versions WHERE account=?1 AND region=?2 AND name=?3 AND version=?4",
                    params![account, region, name, version as i64],
                    layer_row,
                )
                .optional()?;
            row.map(decode_layer).transpose()
        })
        .await
    }

    async fn list_layer_versions(
        &self,
        account: &str,
        region: &str,
        name: Option<&str>,
    ) -> Result<Vec<StoredLayerVersion>, StoreError> {
        let (account, region) = (account.to_string(), region.to_string());
        let name = name.map(str::to_string);
        self.with(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "SELECT config, code_hex, policy, policy_revision FROM layer_versions \
                 WHERE account=?1 AND region=?2 AND (?3 IS NULL OR name=?3) ORDER BY name, version DESC",
            )?;
            let rows = stmt.query_map(params![account, region, name], layer_row)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(decode_layer(row?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_layer_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: u64,
    ) -> Result<bool, StoreError> {
        let (account, region, name) = (account.to_string(), region.to_string(), name.to_string());
        self.with(move |conn, _| {
            let n = conn.execute(
                "DELETE FROM layer_versions WHERE account=?1 AND region=?2 AND name=?3 AND version=?4",
                params![account, region, name, version as i64],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_layer_policy(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: u64,
        policy: Option<String>,
        revision: String,
    ) -> Result<(), StoreError> {
        let (account, region, name) = (account.to_string(), region.to_string(), name.to_string());
        self.with(move |conn, _| {
            let n = conn.execute(
                "UPDATE layer_versions SET policy=?5, policy_revision=?6 WHERE account=?1 AND region=?2 AND name=?3 AND version=?4",
                params![account, region, name, version as i64, policy, revision],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "{}:{version}",
                    lamina_types::layer::layer_arn(&region, &account, &name)
                )));
            }
            Ok(())
        })
        .await
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn queue_activity(&self) -> Arc<tokio::sync::Notify> {
        self.activity.clone()
    }
}

type LayerRow = (String, String, Option<String>, String);

fn layer_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LayerRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn decode_layer(
    (config, code_hex, policy, policy_revision): LayerRow,
) -> Result<StoredLayerVersion, StoreError> {
    let layer: LayerVersion =
        serde_json::from_str(&config).map_err(|source| StoreError::Corrupt {
            key: code_hex.clone(),
            source,
        })?;
    Ok(StoredLayerVersion {
        layer,
        code_sha256_hex: code_hex,
        policy,
        policy_revision,
    })
}

fn decode_provisioned(
    key: &FunctionKey,
    qualifier: &str,
    text: &str,
) -> Result<ProvisionedConcurrencyConfig, StoreError> {
    let mut c: ProvisionedConcurrencyConfig =
        serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
            key: key.qualified_arn(qualifier),
            source,
        })?;
    c.qualifier = qualifier.to_string();
    Ok(c)
}

fn ensure_function(conn: &Connection, key: &FunctionKey) -> Result<(), StoreError> {
    let exists = conn
        .query_row(
            "SELECT 1 FROM functions WHERE account=?1 AND region=?2 AND name=?3",
            params![key.account, key.region, key.name],
            |_| Ok(()),
        )
        .optional()?;
    exists.ok_or_else(|| StoreError::NotFound(key.arn()))
}

fn encode_alias(a: &AliasConfiguration) -> String {
    serde_json::to_string(a).unwrap_or_default()
}

fn decode_alias(key: &FunctionKey, text: &str) -> Result<AliasConfiguration, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
        key: key.arn(),
        source,
    })
}

fn read_alias(
    conn: &Connection,
    key: &FunctionKey,
    name: &str,
) -> Result<Option<AliasConfiguration>, StoreError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT config FROM aliases WHERE account=?1 AND region=?2 AND name=?3 AND alias=?4",
            params![key.account, key.region, key.name, name],
            |r| r.get(0),
        )
        .optional()?;
    text.map(|t| decode_alias(key, &t)).transpose()
}

fn read_aliases(
    conn: &Connection,
    key: &FunctionKey,
) -> Result<Vec<AliasConfiguration>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT config FROM aliases WHERE account=?1 AND region=?2 AND name=?3 ORDER BY alias",
    )?;
    let rows = stmt.query_map(params![key.account, key.region, key.name], |r| {
        r.get::<_, String>(0)
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(decode_alias(key, &row?)?);
    }
    Ok(out)
}

fn update_tags(
    conn: &mut Connection,
    key: &FunctionKey,
    change: impl FnOnce(&mut Tags),
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    let text: Option<String> = tx
        .query_row(
            "SELECT tags FROM functions WHERE account=?1 AND region=?2 AND name=?3",
            params![key.account, key.region, key.name],
            |r| r.get(0),
        )
        .optional()?;
    let Some(text) = text else {
        return Err(StoreError::NotFound(key.arn()));
    };
    let mut tags = decode_tags(key, &text)?;
    change(&mut tags);
    tx.execute(
        "UPDATE functions SET tags=?4 WHERE account=?1 AND region=?2 AND name=?3",
        params![
            key.account,
            key.region,
            key.name,
            serde_json::to_string(&tags).unwrap_or_else(|_| "{}".into())
        ],
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        crate::conformance::run(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_accepts_commit_in_groups() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let key = crate::conformance::sample_version("group").key;
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    store
                        .enqueue_event(&AsyncEvent {
                            request_id: format!("g-{i}"),
                            key,
                            qualifier: None,
                            payload: b"{}".to_vec(),
                            enqueued_at_ms: i,
                            attempts: 0,
                            due_at_ms: i,
                            throttles: 0,
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        drop(store);
        let reopened = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(reopened.pending_events().await.unwrap().len(), 500);
    }

    #[tokio::test]
    async fn state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let v = crate::conformance::sample_version("kept");
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            store.create_function(&v, &Tags::new()).await.unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let got = store.get_version(&v.key, LATEST).await.unwrap().unwrap();
        assert_eq!(got.config, v.config);
    }
}
