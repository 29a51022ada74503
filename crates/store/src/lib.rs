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

use async_trait::async_trait;
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
    /// Attempts made so far.
    pub attempts: u32,
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
}
