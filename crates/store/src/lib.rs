//! lamina's durable state.
//!
//! - [`Store`]: the trait every backend implements (functions and their versions, tags, the
//!   durable async event queue). [`sqlite::SqliteStore`] is the embedded default; a PostgreSQL
//!   backend will implement the same trait and pass the same [`conformance`] suite.
//! - [`blobs::Blobs`]: deployment packages on disk, content-addressed by SHA-256, each unpacked
//!   once into a read-only tree shared by every environment of that code.
//! - [`code`]: the checks a package must pass before it is stored (zip, sizes, no escaping entries).
//!
//! Invariant: a write that returns `Ok` is durable (SQLite in WAL mode with `synchronous=FULL`),
//! so an accepted async event survives a crash of the server.

pub mod blobs;
pub mod code;
pub mod conformance;
pub mod sqlite;
mod sqlite_queue;

use async_trait::async_trait;
use std::collections::BTreeMap;

use lamina_types::asynchronous::{EventInvokeConfig, QueueKey};
use lamina_types::function::{
    AliasConfiguration, FunctionRecord, FunctionVersion, ProvisionedConcurrencyConfig, Tags,
};
use lamina_types::layer::StoredLayerVersion;
use lamina_types::names::FunctionKey;

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The function (or version) does not exist.
    #[error("function not found: {0}")]
    NotFound(String),
    /// A function with that name exists already.
    #[error("function already exists: {0}")]
    AlreadyExists(String),
    /// The stored revision is not the one the write was based on.
    #[error("revision mismatch for {arn}: stored {stored}")]
    RevisionMismatch {
        /// The function.
        arn: String,
        /// The revision now stored.
        stored: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A stored record could not be decoded.
    #[error("corrupt record for {key}: {source}")]
    Corrupt {
        /// Which record.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// Which path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An alias with that name exists already.
    #[error("alias already exists: {0}")]
    AliasExists(String),
    /// The alias does not exist.
    #[error("Alias not found: {0}")]
    AliasNotFound(String),
    /// The version is still the target of aliases.
    #[error("version {version} of {arn} is used by aliases: {aliases}")]
    VersionInUse {
        /// The function.
        arn: String,
        /// The version.
        version: String,
        /// Comma-separated alias names.
        aliases: String,
    },
    /// The queue does not exist.
    #[error("queue not found: {0}")]
    QueueNotFound(String),
    /// A blocking task was cancelled or panicked.
    #[error("store task failed: {0}")]
    Task(String),
}

/// An `Event` invocation accepted and not yet finished.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncEvent {
    /// The request id returned with 202 (and seen by the runtime).
    pub request_id: String,
    /// Which function.
    pub key: FunctionKey,
    /// The qualifier invoked, if any.
    pub qualifier: Option<String>,
    /// The event.
    pub payload: Vec<u8>,
    /// When it was accepted, Unix epoch milliseconds.
    pub enqueued_at_ms: i64,
    /// Attempts made so far (invocations that ran and failed).
    pub attempts: u32,
    /// When it may run next, Unix epoch milliseconds (a delayed retry or a throttle back-off).
    pub due_at_ms: i64,
    /// Throttles and system errors met so far (they set the back-off, not the retry count).
    pub throttles: u32,
}

/// A new message for [`Store::send_messages`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// `MessageId` (a UUID).
    pub message_id: String,
    /// The body.
    pub body: String,
    /// The message attributes as JSON (`{"Name": {"DataType", "StringValue"|"BinaryValue"}}`).
    pub attributes: String,
    /// Milliseconds before it can be received.
    pub delay_ms: i64,
}

/// A message handed out by [`Store::receive_messages`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    /// `MessageId`.
    pub message_id: String,
    /// The handle that deletes it or changes its visibility (valid until it is received again).
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// Message attributes as stored (JSON).
    pub attributes: String,
    /// `SentTimestamp`, epoch ms.
    pub sent_at_ms: i64,
    /// `ApproximateFirstReceiveTimestamp`, epoch ms.
    pub first_received_at_ms: i64,
    /// `ApproximateReceiveCount`, this receive included.
    pub receive_count: u32,
}

/// How [`Store::receive_messages`] hands out messages.
#[derive(Debug, Clone)]
pub struct ReceiveOptions {
    /// At most this many (1-10).
    pub max: usize,
    /// Milliseconds they stay invisible.
    pub visibility_ms: i64,
    /// Now, epoch ms.
    pub now_ms: i64,
    /// Messages sent longer ago than this are deleted instead.
    pub retention_ms: i64,
    /// Messages already received this many times move to this queue instead (the redrive
    /// policy's `deadLetterTargetArn` and `maxReceiveCount`).
    pub redrive: Option<(QueueKey, u32)>,
}

/// A stored queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRecord {
    /// Which queue.
    pub key: QueueKey,
    /// Its settable attributes (`VisibilityTimeout`, `RedrivePolicy`, ...), as strings.
    pub attributes: BTreeMap<String, String>,
    /// `CreatedTimestamp`, epoch seconds.
    pub created_at_s: i64,
    /// `LastModifiedTimestamp`, epoch seconds.
    pub modified_at_s: i64,
}

/// Message counts of a queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Receivable now (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Received and not yet visible again (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: u64,
    /// Still in their delay (`ApproximateNumberOfMessagesDelayed`).
    pub delayed: u64,
}

/// What happened to a receipt handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandleOutcome {
    /// Done.
    Done,
    /// The handle is not one this queue gave out (malformed, or its message is gone).
    Invalid,
    /// The message is not in flight under this handle any more (ChangeMessageVisibility).
    NotInFlight,
}

/// A record that could not be delivered to its destination, kept so it is not lost.
#[derive(Debug, Clone, PartialEq)]
pub struct Undelivered {
    /// The invocation's request id.
    pub request_id: String,
    /// The destination ARN.
    pub destination: String,
    /// What was to be delivered.
    pub record: String,
    /// Why it failed.
    pub error: String,
}

/// Builds a published version from `$LATEST` and the version number it gets.
pub type MakeVersion = Box<dyn FnOnce(&FunctionVersion, u64) -> FunctionVersion + Send + 'static>;

/// Builds a layer version from the number it gets.
pub type MakeLayerVersion = Box<dyn FnOnce(u64) -> StoredLayerVersion + Send + 'static>;

/// Totals for GetAccountSettings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountUsage {
    /// Number of functions.
    pub function_count: u64,
    /// Bytes of stored deployment packages of those functions.
    pub total_code_size: u64,
}

/// The store: every backend implements this, and passes [`conformance::run`].
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Create a function with its `$LATEST`. Fails with `AlreadyExists`.
    async fn create_function(
        &self,
        latest: &FunctionVersion,
        tags: &Tags,
    ) -> Result<(), StoreError>;

    /// The function's `$LATEST` and tags.
    async fn get_function(&self, key: &FunctionKey) -> Result<Option<FunctionRecord>, StoreError>;

    /// One version (`$LATEST` or a number).
    async fn get_version(
        &self,
        key: &FunctionKey,
        version: &str,
    ) -> Result<Option<FunctionVersion>, StoreError>;

    /// Replace a version. With `expected_revision`, only if the stored `RevisionId` is that one
    /// (`RevisionMismatch` otherwise). `NotFound` if the function is gone.
    async fn put_version(
        &self,
        version: &FunctionVersion,
        expected_revision: Option<&str>,
    ) -> Result<(), StoreError>;

    /// `$LATEST` of the functions of an account and region, by name, after `after`.
    async fn list_functions(
        &self,
        account: &str,
        region: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FunctionVersion>, StoreError>;

    /// Every version (any function, account or region) still `Pending` or `InProgress`.
    async fn unsettled(&self) -> Result<Vec<FunctionVersion>, StoreError>;

    /// Delete a function with all its versions. Returns whether it existed.
    async fn delete_function(&self, key: &FunctionKey) -> Result<bool, StoreError>;

    /// Add or replace tags. `NotFound` if the function is gone.
    async fn tag(&self, key: &FunctionKey, tags: &Tags) -> Result<(), StoreError>;

    /// Remove tags by key. `NotFound` if the function is gone.
    async fn untag(&self, key: &FunctionKey, keys: &[String]) -> Result<(), StoreError>;

    /// Function count and code size of an account and region.
    async fn account_usage(&self, account: &str, region: &str) -> Result<AccountUsage, StoreError>;

    /// Store an accepted async event durably.
    async fn enqueue_event(&self, event: &AsyncEvent) -> Result<(), StoreError>;

    /// Every stored async event, oldest first.
    async fn pending_events(&self) -> Result<Vec<AsyncEvent>, StoreError>;

    /// Forget a finished async event.
    async fn delete_event(&self, request_id: &str) -> Result<(), StoreError>;

    /// Record a failed attempt or a throttle of an async event: its counters and when it runs
    /// next. Durable when it returns.
    async fn reschedule_event(
        &self,
        request_id: &str,
        attempts: u32,
        throttles: u32,
        due_at_ms: i64,
    ) -> Result<(), StoreError>;

    /// Keep a destination record that could not be delivered.
    async fn put_undelivered(&self, u: &Undelivered) -> Result<(), StoreError>;

    /// Every kept undelivered record, oldest first.
    async fn list_undelivered(&self) -> Result<Vec<Undelivered>, StoreError>;

    /// Create or replace the event invoke config of a qualifier (`$LATEST`, a version, an
    /// alias). `NotFound` if the function is gone.
    async fn put_event_config(
        &self,
        key: &FunctionKey,
        qualifier: &str,
        config: &EventInvokeConfig,
    ) -> Result<(), StoreError>;

    /// The event invoke config of a qualifier.
    async fn get_event_config(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<Option<EventInvokeConfig>, StoreError>;

    /// Delete the event invoke config of a qualifier; whether it existed.
    async fn delete_event_config(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<bool, StoreError>;

    /// Every event invoke config of a function, by qualifier.
    async fn list_event_configs(
        &self,
        key: &FunctionKey,
    ) -> Result<Vec<(String, EventInvokeConfig)>, StoreError>;

    /// Create a queue; if one of that name exists it is returned unchanged (`false`).
    async fn create_queue(&self, queue: &QueueRecord) -> Result<(QueueRecord, bool), StoreError>;

    /// One queue.
    async fn get_queue(&self, key: &QueueKey) -> Result<Option<QueueRecord>, StoreError>;

    /// The queues of an account and region whose names start with `prefix`, by name.
    async fn list_queues(
        &self,
        account: &str,
        region: &str,
        prefix: &str,
    ) -> Result<Vec<QueueRecord>, StoreError>;

    /// Merge attributes into a queue's. `QueueNotFound` if it is gone.
    async fn set_queue_attributes(
        &self,
        key: &QueueKey,
        attributes: &BTreeMap<String, String>,
        now_s: i64,
    ) -> Result<(), StoreError>;

    /// Delete a queue and its messages; whether it existed.
    async fn delete_queue(&self, key: &QueueKey) -> Result<bool, StoreError>;

    /// Delete every message of a queue. `QueueNotFound` if it is gone.
    async fn purge_queue(&self, key: &QueueKey) -> Result<(), StoreError>;

    /// Message counts at `now_ms`. `QueueNotFound` if it is gone.
    async fn queue_counts(&self, key: &QueueKey, now_ms: i64) -> Result<QueueCounts, StoreError>;

    /// Store messages (all or none), durable when it returns. `QueueNotFound` if it is gone.
    async fn send_messages(
        &self,
        key: &QueueKey,
        messages: &[NewMessage],
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Hand out up to `opts.max` visible messages, oldest first, and hide them for
    /// `opts.visibility_ms`; expired ones are deleted and over-received ones moved to the
    /// dead-letter queue instead. `QueueNotFound` if it is gone.
    async fn receive_messages(
        &self,
        key: &QueueKey,
        opts: &ReceiveOptions,
    ) -> Result<Vec<ReceivedMessage>, StoreError>;

    /// Delete the message a receipt handle names. An old handle of a message still stored
    /// deletes it too (as SQS does).
    async fn delete_message(
        &self,
        key: &QueueKey,
        receipt_handle: &str,
    ) -> Result<HandleOutcome, StoreError>;

    /// Make an in-flight message visible `visibility_ms` after `now_ms`.
    async fn change_visibility(
        &self,
        key: &QueueKey,
        receipt_handle: &str,
        visibility_ms: i64,
        now_ms: i64,
    ) -> Result<HandleOutcome, StoreError>;

    /// Publish `$LATEST` as the next version number, unless it is unchanged since the last
    /// published version, which is then returned. With `expected_revision`, only if `$LATEST`
    /// has that `RevisionId`. `make` turns `$LATEST` into the version (number given); the
    /// boolean says whether a new version was created.
    async fn publish_version(
        &self,
        key: &FunctionKey,
        expected_revision: Option<&str>,
        make: MakeVersion,
    ) -> Result<(FunctionVersion, bool), StoreError>;

    /// Versions of a function: `$LATEST` first, then 1, 2, ...; `after` is the last version of
    /// the previous page.
    async fn list_versions(
        &self,
        key: &FunctionKey,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FunctionVersion>, StoreError>;

    /// Delete one published version. `VersionInUse` if an alias routes to it; `Ok(false)` if
    /// there is no such version.
    async fn delete_version(&self, key: &FunctionKey, version: &str) -> Result<bool, StoreError>;

    /// Create an alias. `AliasExists` if the name is taken, `NotFound` if the function is gone.
    async fn create_alias(
        &self,
        key: &FunctionKey,
        alias: &AliasConfiguration,
    ) -> Result<(), StoreError>;

    /// One alias.
    async fn get_alias(
        &self,
        key: &FunctionKey,
        name: &str,
    ) -> Result<Option<AliasConfiguration>, StoreError>;

    /// Replace an alias, only if its stored `RevisionId` is `expected_revision`.
    async fn update_alias(
        &self,
        key: &FunctionKey,
        alias: &AliasConfiguration,
        expected_revision: &str,
    ) -> Result<(), StoreError>;

    /// Delete an alias; whether it existed.
    async fn delete_alias(&self, key: &FunctionKey, name: &str) -> Result<bool, StoreError>;

    /// Every alias of a function, by name.
    async fn list_aliases(&self, key: &FunctionKey) -> Result<Vec<AliasConfiguration>, StoreError>;

    /// Set or clear a function's reserved concurrency. `NotFound` if the function is gone.
    async fn set_reserved_concurrency(
        &self,
        key: &FunctionKey,
        reserved: Option<u32>,
    ) -> Result<(), StoreError>;

    /// Sum of the reserved concurrency of an account and region's functions, except `except`.
    async fn total_reserved(
        &self,
        account: &str,
        region: &str,
        except: Option<&FunctionKey>,
    ) -> Result<u64, StoreError>;

    /// Create or replace the provisioned concurrency configuration of a qualifier. `NotFound` if
    /// the function is gone.
    async fn put_provisioned(
        &self,
        key: &FunctionKey,
        config: &ProvisionedConcurrencyConfig,
    ) -> Result<(), StoreError>;

    /// The provisioned concurrency configuration of a qualifier.
    async fn get_provisioned(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<Option<ProvisionedConcurrencyConfig>, StoreError>;

    /// Delete a provisioned concurrency configuration; whether it existed.
    async fn delete_provisioned(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<bool, StoreError>;

    /// The provisioned concurrency configurations of a function (`None`: of every function).
    async fn list_provisioned(
        &self,
        key: Option<&FunctionKey>,
    ) -> Result<Vec<(FunctionKey, ProvisionedConcurrencyConfig)>, StoreError>;

    /// Publish the next version of a layer (numbers are never reused); `make` builds it from
    /// its number.
    async fn publish_layer_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        make: MakeLayerVersion,
    ) -> Result<StoredLayerVersion, StoreError>;

    /// One layer version.
    async fn get_layer_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: u64,
    ) -> Result<Option<StoredLayerVersion>, StoreError>;

    /// The versions of one layer (or of every layer, `name` `None`) of an account and region,
    /// by layer name, newest version first.
    async fn list_layer_versions(
        &self,
        account: &str,
        region: &str,
        name: Option<&str>,
    ) -> Result<Vec<StoredLayerVersion>, StoreError>;

    /// Delete a layer version; whether it existed. Functions using it keep its package.
    async fn delete_layer_version(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: u64,
    ) -> Result<bool, StoreError>;

    /// Replace a layer version's policy (and its revision). `NotFound` if the version is gone.
    async fn put_layer_policy(
        &self,
        account: &str,
        region: &str,
        name: &str,
        version: u64,
        policy: Option<String>,
        revision: String,
    ) -> Result<(), StoreError>;

    /// A number that changes whenever any function changes (for caches in this process).
    fn generation(&self) -> u64;

    /// Woken (all waiters) whenever this process stores a message or makes one visible
    /// sooner, so long polls need not poll the database often.
    fn queue_activity(&self) -> std::sync::Arc<tokio::sync::Notify>;
}
