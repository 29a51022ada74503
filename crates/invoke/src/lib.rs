//! The invocation service: from "invoke this name with this qualifier" to a finished invocation.
//!
//! - Routing: a qualifier (none, `$LATEST`, a version number, an alias) is resolved to one
//!   immutable [`FunctionVersion`]; an alias with `AdditionalVersionWeights` picks its extra
//!   version with that probability. Versions, aliases and concurrency settings come through a
//!   small cache that is dropped whenever the store's generation changes, so the warm path
//!   does not touch the database.
//! - Concurrency: a function with reserved concurrency runs at most that many invocations at
//!   once; all other functions of an account and region share what the account limit leaves
//!   unreserved. Over a limit, a sync invoke is refused with [`InvokeError::Throttled`].
//! - Sync invokes run in a task of their own, so an invocation always finishes (and its
//!   environment returns to the pool) even if the caller goes away.
//! - `Event` invokes are written to the store before [`Invoker::enqueue`] returns; the async
//!   worker runs them and forgets them only once they ran. Events left in the store by a crash are
//!   picked up again by [`Invoker::resume`] (at-least-once). Retries, back-off, destinations and
//!   dead-letter queues are the [`asynchronous`] worker's.

pub mod asynchronous;

pub use asynchronous::{AsyncSettings, AsyncStats};

// foldhash: these maps are looked up a dozen times per warm invoke, and SipHash was 6 % of
// the platform's instructions there; foldhash is seeded per process like SipHash.
use foldhash::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use lamina_pool::{FunctionOutcome, InvokeParams, Pool};
use lamina_store::{AsyncEvent, Store, StoreError};
use lamina_types::function::{state, AliasConfiguration, FunctionVersion};
use lamina_types::names::{is_version_number, FunctionKey, LATEST};
use tokio::sync::{mpsc, Notify};

/// Why an invocation could not be started.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No such function, version or alias (the message carries the ARN).
    #[error("Function not found: {0}")]
    NotFound(String),
    /// A concurrency limit is reached (`TooManyRequestsException`).
    #[error("Rate Exceeded.")]
    Throttled {
        /// `ReservedFunctionConcurrentInvocationLimitExceeded` or
        /// `ConcurrentInvocationLimitExceeded`.
        reason: &'static str,
    },
    /// The function exists but is not `Active`.
    #[error("The operation cannot be performed at this time. The function is currently in the following state: {state}")]
    NotActive {
        /// Its state.
        state: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The invocation task failed.
    #[error("invocation task failed: {0}")]
    Internal(String),
}

/// One invocation as the API hands it over.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// Which function.
    pub key: FunctionKey,
    /// The qualifier, if one was given.
    pub qualifier: Option<String>,
    /// The event (valid JSON).
    pub payload: Bytes,
    /// The request id (also returned to the caller as `x-amzn-RequestId`).
    pub request_id: String,
    /// Decoded client context JSON.
    pub client_context: Option<String>,
    /// The caller's `X-Amzn-Trace-Id`, if any.
    pub trace_id: Option<String>,
}

/// A finished sync invocation.
#[derive(Debug, Clone)]
pub struct SyncResponse {
    /// `X-Amz-Executed-Version`.
    pub executed_version: String,
    /// `X-Amz-Function-Error` (`Unhandled`) when the invocation failed.
    pub function_error: Option<&'static str>,
    /// The function's response or error document.
    pub body: Bytes,
    /// The runtime's content type of a successful response.
    pub content_type: Option<String>,
    /// The last 4 KB of the invocation's log.
    pub log_tail: Vec<u8>,
}

#[derive(Debug, Default)]
struct Cache {
    generation: u64,
    /// Versions per function and version name (nested, so that a lookup borrows its key).
    versions: HashMap<FunctionKey, HashMap<String, Arc<FunctionVersion>>>,
    aliases: HashMap<(FunctionKey, String), Arc<AliasConfiguration>>,
    /// Reserved concurrency per function (`None`: unreserved).
    reserved: HashMap<FunctionKey, Option<u32>>,
    /// Sum of reservations per account and region.
    total_reserved: HashMap<String, HashMap<String, u64>>,
    /// Event invoke configs per (function, qualifier); the default when none is set.
    event_configs:
        HashMap<(FunctionKey, String), Arc<lamina_types::asynchronous::EventInvokeConfig>>,
}

impl Cache {
    /// Forget everything if the store changed since it was filled.
    fn check(&mut self, generation: u64) {
        if self.generation != generation {
            *self = Cache {
                generation,
                ..Cache::default()
            };
        }
    }
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    pool: Pool,
    cache: Mutex<Cache>,
    /// Invocations running now, per concurrency pool.
    running: Mutex<HashMap<PoolKey, u32>>,
    concurrency_limit: u32,
    events: mpsc::UnboundedSender<AsyncEvent>,
    settings: AsyncSettings,
    stats: AsyncStats,
    /// Woken (one waiter at a time) when an invocation of a concurrency pool ends.
    freed: Mutex<HashMap<PoolKey, Arc<Notify>>>,
}

/// A concurrency pool: one function's reservation, or an account and region's unreserved rest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PoolKey {
    Reserved(FunctionKey),
    Unreserved(String, String),
}

/// Room for one running invocation; given back when dropped.
#[derive(Debug)]
struct Permit {
    inner: Arc<Inner>,
    pool: PoolKey,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.inner.freed).get(&self.pool) {
            n.notify_one();
        }
        if let Some(n) = lock(&self.inner.running).get_mut(&self.pool) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The invocation service.
#[derive(Debug, Clone)]
pub struct Invoker {
    inner: Arc<Inner>,
}

impl Invoker {
    /// Build the service and start its async worker (needs a Tokio runtime).
    /// `concurrency_limit` is the account concurrency limit (Lambda's default is 1000).
    pub fn new(store: Arc<dyn Store>, pool: Pool, concurrency_limit: u32) -> Invoker {
        Invoker::with_settings(store, pool, concurrency_limit, AsyncSettings::default())
    }

    /// [`Invoker::new`] with the async worker's retry delays and back-off.
    pub fn with_settings(
        store: Arc<dyn Store>,
        pool: Pool,
        concurrency_limit: u32,
        settings: AsyncSettings,
    ) -> Invoker {
        let (tx, rx) = mpsc::unbounded_channel();
        let invoker = Invoker {
            inner: Arc::new(Inner {
                store,
                pool,
                cache: Mutex::new(Cache::default()),
                running: Mutex::new(HashMap::default()),
                concurrency_limit,
                events: tx,
                settings,
                stats: AsyncStats::default(),
                freed: Mutex::new(HashMap::default()),
            }),
        };
        tokio::spawn(asynchronous::worker(invoker.clone(), rx));
        invoker
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The account concurrency limit.
    pub fn concurrency_limit(&self) -> u32 {
        self.inner.concurrency_limit
    }

    /// Resolve a qualifier to the version it names; an alias picks one of its versions by
    /// weight.
    pub async fn resolve(
        &self,
        key: &FunctionKey,
        qualifier: Option<&str>,
    ) -> Result<Arc<FunctionVersion>, InvokeError> {
        let version: std::borrow::Cow<'_, str> = match qualifier {
            None => LATEST.into(),
            Some(q) if q == LATEST || is_version_number(q) => q.into(),
            Some(alias) => pick(&*self.alias(key, alias).await?).into(),
        };
        let generation = self.inner.store.generation();
        {
            let mut cache = lock(&self.inner.cache);
            cache.check(generation);
            if let Some(v) = cache
                .versions
                .get(key)
                .and_then(|v| v.get(version.as_ref()))
            {
                return Ok(v.clone());
            }
        }
        let found = self
            .inner
            .store
            .get_version(key, &version)
            .await?
            .ok_or_else(|| InvokeError::NotFound(key.arn_with(qualifier)))?;
        let found = Arc::new(found);
        let mut cache = lock(&self.inner.cache);
        if cache.generation == generation {
            cache
                .versions
                .entry(key.clone())
                .or_default()
                .insert(version.into_owned(), found.clone());
        }
        Ok(found)
    }

    async fn alias(
        &self,
        key: &FunctionKey,
        name: &str,
    ) -> Result<Arc<AliasConfiguration>, InvokeError> {
        let generation = self.inner.store.generation();
        let cache_key = (key.clone(), name.to_string());
        {
            let mut cache = lock(&self.inner.cache);
            cache.check(generation);
            if let Some(a) = cache.aliases.get(&cache_key) {
                return Ok(a.clone());
            }
        }
        let alias = self
            .inner
            .store
            .get_alias(key, name)
            .await?
            .ok_or_else(|| InvokeError::NotFound(key.qualified_arn(name)))?;
        let alias = Arc::new(alias);
        let mut cache = lock(&self.inner.cache);
        if cache.generation == generation {
            cache.aliases.insert(cache_key, alias.clone());
        }
        Ok(alias)
    }

    /// Take room for one invocation of `key`, or say which limit is reached.
    async fn admit(&self, key: &FunctionKey) -> Result<Permit, InvokeError> {
        let (reserved, total_reserved) = self.limits(key).await?;
        let (pool, capacity, reason) = match reserved {
            Some(limit) => (
                PoolKey::Reserved(key.clone()),
                u64::from(limit),
                "ReservedFunctionConcurrentInvocationLimitExceeded",
            ),
            None => (
                PoolKey::Unreserved(key.account.clone(), key.region.clone()),
                u64::from(self.inner.concurrency_limit).saturating_sub(total_reserved),
                "ConcurrentInvocationLimitExceeded",
            ),
        };
        let mut running = lock(&self.inner.running);
        // Looked up before inserting, so that the key is not cloned on every invoke.
        match running.get_mut(&pool) {
            Some(n) if u64::from(*n) >= capacity => return Err(InvokeError::Throttled { reason }),
            Some(n) => *n += 1,
            None if capacity == 0 => return Err(InvokeError::Throttled { reason }),
            None => {
                running.insert(pool.clone(), 1);
            }
        }
        drop(running);
        Ok(Permit {
            inner: self.inner.clone(),
            pool,
        })
    }

    /// Resolves once an invocation of the concurrency pool `key` runs in has ended (or at once
    /// if one ended since the last waiter was woken).
    pub(crate) async fn capacity_freed(&self, key: &FunctionKey) {
        let pool = match self.limits(key).await {
            Ok((Some(_), _)) => PoolKey::Reserved(key.clone()),
            _ => PoolKey::Unreserved(key.account.clone(), key.region.clone()),
        };
        let notify = lock(&self.inner.freed).entry(pool).or_default().clone();
        notify.notified().await;
    }

    /// A function's reserved concurrency and the sum of all reservations of its account and
    /// region.
    async fn limits(&self, key: &FunctionKey) -> Result<(Option<u32>, u64), InvokeError> {
        let generation = self.inner.store.generation();
        {
            let mut cache = lock(&self.inner.cache);
            cache.check(generation);
            let total = cache
                .total_reserved
                .get(&key.account)
                .and_then(|regions| regions.get(&key.region));
            if let (Some(r), Some(t)) = (cache.reserved.get(key), total) {
                return Ok((*r, *t));
            }
        }
        let reserved = self
            .inner
            .store
            .get_function(key)
            .await?
            .ok_or_else(|| InvokeError::NotFound(key.arn()))?
            .reserved_concurrency;
        let total = self
            .inner
            .store
            .total_reserved(&key.account, &key.region, None)
            .await?;
        let mut cache = lock(&self.inner.cache);
        if cache.generation == generation {
            cache.reserved.insert(key.clone(), reserved);
            cache
                .total_reserved
                .entry(key.account.clone())
                .or_default()
                .insert(key.region.clone(), total);
        }
        Ok((reserved, total))
    }

    async fn runnable(
        &self,
        key: &FunctionKey,
        qualifier: Option<&str>,
    ) -> Result<Arc<FunctionVersion>, InvokeError> {
        let v = self.resolve(key, qualifier).await?;
        match v.config.state.as_deref() {
            Some(state::ACTIVE) => Ok(v),
            other => Err(InvokeError::NotActive {
                state: other.unwrap_or("Pending").to_string(),
            }),
        }
    }

    /// Check that an invocation could run (`DryRun`).
    pub async fn dry_run(
        &self,
        key: &FunctionKey,
        qualifier: Option<&str>,
    ) -> Result<(), InvokeError> {
        self.runnable(key, qualifier).await.map(|_| ())
    }

    /// Run a `RequestResponse` invocation to its end.
    pub async fn invoke(&self, req: InvokeRequest) -> Result<SyncResponse, InvokeError> {
        let version = self.runnable(&req.key, req.qualifier.as_deref()).await?;
        let permit = self.admit(&req.key).await?;
        let pool = self.inner.pool.clone();
        let params = params(&req);
        let result = tokio::spawn(async move {
            let result = pool.invoke(version, params).await;
            drop(permit);
            result
        })
        .await
        .map_err(|e| InvokeError::Internal(e.to_string()))?;
        Ok(match result.outcome {
            FunctionOutcome::Success { body, content_type } => SyncResponse {
                executed_version: result.executed_version,
                function_error: None,
                body,
                content_type,
                log_tail: result.log_tail,
            },
            FunctionOutcome::Error { body, .. } => SyncResponse {
                executed_version: result.executed_version,
                function_error: Some("Unhandled"),
                body,
                content_type: None,
                log_tail: result.log_tail,
            },
        })
    }

    /// Accept an `Event` invocation: durable when this returns `Ok`.
    pub async fn enqueue(&self, req: InvokeRequest) -> Result<(), InvokeError> {
        self.resolve(&req.key, req.qualifier.as_deref()).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let event = AsyncEvent {
            request_id: req.request_id,
            key: req.key,
            qualifier: req.qualifier,
            payload: req.payload.to_vec(),
            enqueued_at_ms: now,
            attempts: 0,
            due_at_ms: now,
            throttles: 0,
        };
        self.inner.store.enqueue_event(&event).await?;
        // The worker lives as long as the invoker; if it is gone the event stays stored and
        // runs after the next start.
        let _ = self.inner.events.send(event);
        Ok(())
    }

    /// Hand every stored async event to the worker (at start-up).
    pub async fn resume(&self) -> Result<usize, InvokeError> {
        let events = self.inner.store.pending_events().await?;
        let n = events.len();
        for e in events {
            let _ = self.inner.events.send(e);
        }
        Ok(n)
    }

    /// Why `version` cannot run on this host, as (`StateReasonCode`, `StateReason`).
    pub fn cannot_run(&self, version: &FunctionVersion) -> Option<(&'static str, String)> {
        self.inner.pool.cannot_run(version)
    }

    /// Start (and keep) `count` environments for a version or alias's version; returns once
    /// they are ready, or why they could not start.
    pub async fn provision(
        &self,
        key: &FunctionKey,
        qualifier: &str,
        count: usize,
    ) -> Result<(), String> {
        let version = self
            .provisioned_version(key, qualifier)
            .await
            .map_err(|e| e.to_string())?;
        self.inner.pool.provision(version, count).await
    }

    /// Stop keeping a version or alias's provisioned environments.
    pub async fn unprovision(&self, key: &FunctionKey, qualifier: &str) {
        if let Ok(version) = self.provisioned_version(key, qualifier).await {
            self.inner.pool.unprovision(key, version.version());
        }
    }

    /// The version provisioned concurrency applies to: the version, or an alias's main version.
    async fn provisioned_version(
        &self,
        key: &FunctionKey,
        qualifier: &str,
    ) -> Result<Arc<FunctionVersion>, InvokeError> {
        let version = if is_version_number(qualifier) {
            qualifier.to_string()
        } else {
            self.alias(key, qualifier).await?.function_version.clone()
        };
        self.resolve(key, Some(&version)).await
    }

    /// Stop the idle environments of `key`'s `version` older than `revision` (after an update).
    pub fn retire_older(&self, key: &FunctionKey, version: &str, revision: &str) {
        self.inner.pool.retire_older(key, version, revision);
    }

    /// Stop the idle environments of a deleted function.
    pub fn drain(&self, key: &FunctionKey) {
        self.inner.pool.drain(key);
    }
}

/// The version an alias sends this invocation to.
fn pick(alias: &AliasConfiguration) -> String {
    if let Some(routing) = &alias.routing_config {
        let draw: f64 = rand::random();
        let mut acc = 0.0;
        for (version, weight) in &routing.additional_version_weights {
            acc += weight;
            if draw < acc {
                return version.clone();
            }
        }
    }
    alias.function_version.clone()
}

fn params(req: &InvokeRequest) -> InvokeParams {
    InvokeParams {
        request_id: req.request_id.clone(),
        payload: req.payload.clone(),
        invoked_function_arn: req.key.arn_with(req.qualifier.as_deref()),
        trace_id: req.trace_id.clone().unwrap_or_else(new_trace_id),
        client_context: req.client_context.clone(),
    }
}

/// A new X-Ray trace header: `Root=1-{epoch hex}-{96 bits};Parent={64 bits};Sampled=0`.
fn new_trace_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    // The time's 4 bytes and 20 random ones, hex-encoded into one buffer without `fmt`: this
    // runs on every invoke without a trace header.
    let mut bytes = [0u8; 24];
    bytes[..4].copy_from_slice(&now.to_be_bytes());
    bytes[4..].copy_from_slice(&rand::random::<[u8; 20]>());
    let mut hex = [0u8; 48];
    let hex = match hex::encode_to_slice(bytes, &mut hex) {
        Ok(()) => std::str::from_utf8(&hex).unwrap_or_default(),
        Err(_) => "",
    };
    let mut id = String::with_capacity(80);
    id.push_str("Root=1-");
    id.push_str(hex.get(..8).unwrap_or_default());
    id.push('-');
    id.push_str(hex.get(8..32).unwrap_or_default());
    id.push_str(";Parent=");
    id.push_str(hex.get(32..).unwrap_or_default());
    id.push_str(";Sampled=0");
    id
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    #[test]
    fn trace_ids_have_the_x_ray_shape() {
        let id = super::new_trace_id();
        let (root, rest) = id.split_once(";Parent=").unwrap();
        let (parent, sampled) = rest.split_once(';').unwrap();
        let parts: Vec<&str> = root.strip_prefix("Root=").unwrap().split('-').collect();
        assert_eq!(parts[0], "1");
        assert_eq!((parts[1].len(), parts[2].len(), parent.len()), (8, 24, 16));
        assert!(parts[1..]
            .iter()
            .chain([&parent])
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit())));
        assert_eq!(sampled, "Sampled=0");
        assert_ne!(id, super::new_trace_id());
    }
}
