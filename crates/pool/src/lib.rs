//! Execution environments per function version: cold start, warm reuse, idle reaping, draining.
//!
//! [`Pool::invoke`] runs one invocation of one [`FunctionVersion`]: it takes an idle environment
//! of exactly that version and revision, or cold-starts one, runs the invocation, and puts the
//! environment back if it is still healthy. Environments are keyed by function, version and
//! `RevisionId`, so an environment never serves a configuration or code other than the one it
//! was started with; idle environments of older revisions are killed once an update is applied
//! ([`Pool::retire_older`]) or a newer revision is invoked, busy ones when their invocation ends.
//! A reaper kills environments idle for longer than [`PoolConfig::idle_timeout`].
//!
//! This is the only crate that combines `sandbox` (the process) and `runtime-api` (its endpoint).
//! Every way an invocation can fail inside the environment (init error, crash, timeout, oversize
//! response) comes back as data, a [`FunctionOutcome::Error`], never as a Rust error.

mod environment;
mod logs;
pub mod runtimes;

// foldhash: these maps are looked up a dozen times per warm invoke, and SipHash was 6 % of
// the platform's instructions there; foldhash is seeded per process like SipHash.
use foldhash::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lamina_types::function::FunctionVersion;
use lamina_types::names::FunctionKey;
use lamina_types::runtime::{family, RuntimeFamily};

use environment::Environment;
use lamina_sandbox::{Network, Sandbox};
pub use logs::stream_path;
pub use runtimes::Interpreters;

/// Credentials given to functions as `AWS_ACCESS_KEY_ID` & co.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`.
    pub session_token: String,
}

/// How the pool starts and keeps environments.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Root of the log stream files.
    pub logs_dir: PathBuf,
    /// Where lamina's runtime clients are installed.
    pub runtime_dir: PathBuf,
    /// Where merged layer directories (a function's `/opt`) are built.
    pub opt_dir: PathBuf,
    /// Interpreters per runtime.
    pub interpreters: Interpreters,
    /// An environment idle this long is stopped.
    pub idle_timeout: Duration,
    /// Longest init phase.
    pub init_timeout: Duration,
    /// Address the Runtime API endpoints listen on.
    pub bind_ip: IpAddr,
    /// Credentials functions see.
    pub credentials: Credentials,
    /// Where environments run (the isolation level in force).
    pub sandbox: Arc<Sandbox>,
    /// The network environments get unless a function asks for a stricter one.
    pub network: Network,
}

/// What the runtime is told about one invocation.
#[derive(Debug, Clone)]
pub struct InvokeParams {
    /// Request id.
    pub request_id: String,
    /// The event.
    pub payload: Bytes,
    /// The ARN as invoked.
    pub invoked_function_arn: String,
    /// X-Ray trace header.
    pub trace_id: String,
    /// Decoded client context JSON.
    pub client_context: Option<String>,
}

/// How an invocation ended, as data.
#[derive(Debug, Clone)]
pub enum FunctionOutcome {
    /// The function's result.
    Success {
        /// Response bytes.
        body: Bytes,
        /// The runtime's content type.
        content_type: Option<String>,
    },
    /// The function, its runtime or the platform reported an error.
    Error {
        /// `errorType` (`Runtime.ExitError`, `Sandbox.Timedout`, the runtime's own...).
        error_type: String,
        /// The error document returned to the caller.
        body: Bytes,
    },
}

/// The result of [`Pool::invoke`].
#[derive(Debug, Clone)]
pub struct InvokeResult {
    /// The version that ran.
    pub executed_version: String,
    /// How it ended.
    pub outcome: FunctionOutcome,
    /// The last 4 KB of this invocation's log.
    pub log_tail: Vec<u8>,
    /// Time from dispatch to answer.
    pub duration: Duration,
}

type EnvKey = (FunctionKey, String, String);

/// The provisioned concurrency of one function version.
#[derive(Debug)]
struct Provision {
    version: Arc<FunctionVersion>,
    target: usize,
    state: Arc<ProvisionState>,
}

#[derive(Debug, Default)]
struct ProvisionState {
    /// Provisioned environments alive now.
    live: AtomicUsize,
    /// Cleared when the configuration is removed: its environments become ordinary ones.
    active: AtomicBool,
}

/// Marks an environment as one of a version's provisioned environments while it lives.
#[derive(Debug)]
pub(crate) struct ProvisionedSlot(Arc<ProvisionState>);

impl ProvisionedSlot {
    fn new(state: &Arc<ProvisionState>) -> ProvisionedSlot {
        state.live.fetch_add(1, Ordering::AcqRel);
        ProvisionedSlot(state.clone())
    }

    /// Whether the configuration still wants this environment kept.
    pub(crate) fn active(&self) -> bool {
        self.0.active.load(Ordering::Acquire)
    }
}

impl Drop for ProvisionedSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug)]
struct Inner {
    cfg: PoolConfig,
    /// Idle environments per (function, version, revision); the last one is the most recent.
    idle: Mutex<HashMap<EnvKey, Vec<Environment>>>,
    /// The newest revision seen per function and version (nested, so that the lookup on every
    /// invoke borrows its key instead of building one).
    current: Mutex<HashMap<FunctionKey, HashMap<String, String>>>,
    /// Provisioned concurrency per (function, version).
    provisioned: Mutex<HashMap<(FunctionKey, String), Provision>>,
    /// Environments starting: from their spawn to the end of their first invocation.
    starting: AtomicUsize,
}

/// One environment starting (see `Inner::starting`). When the last one is done, the sandbox
/// pre-starts environments for the next cold starts: not before, so that it does not compete
/// for the CPU with the starts under way.
struct Starting(Arc<Inner>);

impl Starting {
    fn new(inner: &Arc<Inner>) -> Starting {
        inner.starting.fetch_add(1, Ordering::AcqRel);
        Starting(inner.clone())
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if self.0.starting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.cfg.sandbox.refill_now();
        }
    }
}

/// The execution environments of every function.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl Pool {
    /// A pool with no environments yet. Starts the idle reaper (needs a Tokio runtime).
    pub fn new(cfg: PoolConfig) -> Pool {
        let inner = Arc::new(Inner {
            cfg,
            idle: Mutex::new(HashMap::default()),
            current: Mutex::new(HashMap::default()),
            provisioned: Mutex::new(HashMap::default()),
            starting: AtomicUsize::new(0),
        });
        tokio::spawn(reap(Arc::downgrade(&inner)));
        tokio::spawn(freeze_idle(Arc::downgrade(&inner)));
        Pool { inner }
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.cfg
    }

    /// Run one invocation of `version`.
    pub async fn invoke(
        &self,
        version: Arc<FunctionVersion>,
        params: InvokeParams,
    ) -> InvokeResult {
        let key: EnvKey = (
            version.key.clone(),
            version.version().to_string(),
            version.config.revision_id.clone(),
        );
        self.note_revision(&key);
        let warm = {
            let mut idle = lock(&self.inner.idle);
            let mut found = None;
            if let Some(list) = idle.get_mut(&key) {
                while let Some(mut env) = list.pop() {
                    if env.is_usable() {
                        found = Some(env);
                        break;
                    }
                }
            }
            found
        };
        // A cold start lasts until its first invocation is over.
        let mut starting = None;
        let mut env = match warm {
            Some(env) => env,
            None => {
                starting = Some(Starting::new(&self.inner));
                // Boxed: a start's future is several kB, and every warm invoke would otherwise
                // carry (and copy, when the invoke is spawned as a task) that much state.
                let start = Environment::start(&self.inner.cfg, version, &params.request_id, None);
                match Box::pin(start).await {
                    Ok(env) => env,
                    Err(failure) => {
                        return InvokeResult {
                            executed_version: key.1,
                            outcome: FunctionOutcome::Error {
                                error_type: failure.error_type,
                                body: failure.body,
                            },
                            log_tail: failure.log_tail,
                            duration: Duration::ZERO,
                        }
                    }
                }
            }
        };
        let result = env.invoke(params).await;
        if env.is_usable() && self.is_current(&key) {
            lock(&self.inner.idle).entry(key).or_default().push(env);
        }
        drop(starting);
        result
    }

    /// Keep `count` environments of `version` started ahead of time and never reaped while
    /// idle (provisioned concurrency). Returns once they are all initialised, or with the
    /// reason the first one failed.
    pub async fn provision(
        &self,
        version: Arc<FunctionVersion>,
        count: usize,
    ) -> Result<(), String> {
        let id = (version.key.clone(), version.version().to_string());
        let state = {
            let mut provisioned = lock(&self.inner.provisioned);
            let entry = provisioned.entry(id).or_insert_with(|| Provision {
                version: version.clone(),
                target: 0,
                state: Arc::new(ProvisionState::default()),
            });
            entry.target = count;
            entry.version = version.clone();
            entry.state.active.store(true, Ordering::Release);
            entry.state.clone()
        };
        self.fill(&version, &state, count).await
    }

    /// Start provisioned environments until `count` are alive.
    async fn fill(
        &self,
        version: &Arc<FunctionVersion>,
        state: &Arc<ProvisionState>,
        count: usize,
    ) -> Result<(), String> {
        let missing = count.saturating_sub(state.live.load(Ordering::Acquire));
        let key: EnvKey = (
            version.key.clone(),
            version.version().to_string(),
            version.config.revision_id.clone(),
        );
        self.note_revision(&key);
        let starts = (0..missing).map(|_| {
            let cfg = self.inner.cfg.clone();
            let version = version.clone();
            let slot = ProvisionedSlot::new(state);
            let starting = Starting::new(&self.inner);
            tokio::spawn(async move {
                let started =
                    Environment::start(&cfg, version, "provisioned-concurrency", Some(slot)).await;
                drop(starting);
                started
            })
        });
        let mut first_error = None;
        for started in starts.collect::<Vec<_>>() {
            match started.await {
                Ok(Ok(env)) => lock(&self.inner.idle)
                    .entry(key.clone())
                    .or_default()
                    .push(env),
                Ok(Err(failure)) => {
                    first_error
                        .get_or_insert_with(|| String::from_utf8_lossy(&failure.body).into_owned());
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Stop keeping environments of this version provisioned; they become ordinary idle ones.
    pub fn unprovision(&self, function: &FunctionKey, version: &str) {
        if let Some(p) =
            lock(&self.inner.provisioned).remove(&(function.clone(), version.to_string()))
        {
            p.state.active.store(false, Ordering::Release);
        }
    }

    /// Stop every idle environment of `function` (after it is deleted). Busy ones are stopped
    /// when their invocation ends.
    pub fn drain(&self, function: &FunctionKey) {
        lock(&self.inner.current).remove(function);
        lock(&self.inner.provisioned).retain(|(f, _), p| {
            if f == function {
                p.state.active.store(false, Ordering::Release);
            }
            f != function
        });
        let removed: Vec<Environment> = {
            let mut idle = lock(&self.inner.idle);
            let keys: Vec<EnvKey> = idle.keys().filter(|k| &k.0 == function).cloned().collect();
            keys.iter()
                .filter_map(|k| idle.remove(k))
                .flatten()
                .collect()
        };
        drop(removed);
    }

    /// Why `version` cannot run here, as (`StateReasonCode`, `StateReason`), or `None` if it
    /// can: a `provided` package without an executable `bootstrap`, or no interpreter.
    pub fn cannot_run(&self, version: &FunctionVersion) -> Option<(&'static str, String)> {
        let runtime = version.config.runtime.as_deref().unwrap_or_default();
        match family(runtime) {
            Some(RuntimeFamily::Provided) => {
                // The package's bootstrap, else the last layer's that has one.
                let bootstrap = std::iter::once(&version.code_dir)
                    .chain(version.layers.iter().rev().map(|l| &l.dir))
                    .map(|d| d.join("bootstrap"))
                    .find(|b| b.exists())
                    .unwrap_or_else(|| version.code_dir.join("bootstrap"));
                if runtimes::is_executable(&bootstrap) {
                    None
                } else if bootstrap.exists() {
                    Some((
                        "FunctionError.PermissionDenied",
                        "The bootstrap file in the deployment package is not executable; set its mode to 755 before zipping".into(),
                    ))
                } else {
                    Some((
                        "FunctionError.InvalidEntryPoint",
                        format!("A {runtime} function runs the executable file 'bootstrap' at the root of its deployment package, and this package has none"),
                    ))
                }
            }
            Some(_) if self.inner.cfg.interpreters.get(runtime).is_none() => Some((
                "InvalidRuntime",
                format!("This lamina host has no interpreter for {runtime}; see `lamina doctor`"),
            )),
            Some(_) => None,
            None => Some((
                "InvalidRuntime",
                format!("The runtime {runtime} is not supported by lamina"),
            )),
        }
    }

    /// Stop every idle environment and reap its processes (at shutdown, so none is left
    /// behind as a zombie).
    pub async fn shutdown(&self) {
        let all: Vec<Environment> = lock(&self.inner.idle)
            .drain()
            .flat_map(|(_, list)| list)
            .collect();
        for env in all {
            env.stop().await;
        }
    }

    /// How many environments are idle now.
    pub fn idle_count(&self) -> usize {
        lock(&self.inner.idle).values().map(Vec::len).sum()
    }

    /// `revision` is now the newest of `function`'s `version` (an update was applied): stop
    /// the idle environments of older revisions now, so that the first invocation of the new
    /// one does not share the machine with their teardown. Busy ones stop when their
    /// invocation ends.
    pub fn retire_older(&self, function: &FunctionKey, version: &str, revision: &str) {
        self.note_revision(&(function.clone(), version.to_string(), revision.to_string()));
    }

    /// Record `key`'s revision as the newest of its (function, version); stop idle environments
    /// of older revisions.
    fn note_revision(&self, key: &EnvKey) {
        let changed = {
            let mut current = lock(&self.inner.current);
            match current.get_mut(&key.0) {
                Some(versions) => match versions.get_mut(&key.1) {
                    Some(rev) if *rev == key.2 => false,
                    Some(rev) => {
                        *rev = key.2.clone();
                        true
                    }
                    None => {
                        versions.insert(key.1.clone(), key.2.clone());
                        true
                    }
                },
                None => {
                    let versions = HashMap::from_iter([(key.1.clone(), key.2.clone())]);
                    current.insert(key.0.clone(), versions);
                    true
                }
            }
        };
        if changed {
            let stale: Vec<Environment> = {
                let mut idle = lock(&self.inner.idle);
                let keys: Vec<EnvKey> = idle
                    .keys()
                    .filter(|k| k.0 == key.0 && k.1 == key.1 && k.2 != key.2)
                    .cloned()
                    .collect();
                keys.iter()
                    .filter_map(|k| idle.remove(k))
                    .flatten()
                    .collect()
            };
            drop(stale);
        }
    }

    fn is_current(&self, key: &EnvKey) -> bool {
        lock(&self.inner.current)
            .get(&key.0)
            .and_then(|versions| versions.get(&key.1))
            .is_some_and(|rev| rev == &key.2)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An environment idle this long is frozen (cgroup freezer) until its next invocation, so that
/// idle functions use no CPU. Not at once: under steady load an environment is idle for
/// microseconds between invocations, and freezing and thawing every time would cost about
/// 0.1 ms of CPU per invoke.
pub const FREEZE_AFTER: Duration = Duration::from_millis(100);

/// Write idle environments' buffered log lines ([`logs::FLUSH_PERIOD`]) and freeze those idle
/// for [`FREEZE_AFTER`].
async fn freeze_idle(pool: Weak<Inner>) {
    loop {
        tokio::time::sleep(logs::FLUSH_PERIOD).await;
        let Some(inner) = pool.upgrade() else { return };
        let now = Instant::now();
        let mut idle = lock(&inner.idle);
        for env in idle.values_mut().flatten() {
            env.flush_logs();
            if now.duration_since(env.last_used) >= FREEZE_AFTER {
                env.freeze();
            }
        }
    }
}

/// Stop environments idle for longer than the idle timeout, and ones whose process died.
async fn reap(pool: Weak<Inner>) {
    let period = match pool.upgrade() {
        Some(p) => {
            (p.cfg.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
        }
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = pool.upgrade() else { return };
        let now = Instant::now();
        let idle_timeout = inner.cfg.idle_timeout;
        let expired: Vec<Environment> = {
            let mut idle = lock(&inner.idle);
            let mut out = Vec::new();
            for list in idle.values_mut() {
                let mut keep = Vec::with_capacity(list.len());
                for mut env in list.drain(..) {
                    let kept = env
                        .provisioned
                        .as_ref()
                        .is_some_and(ProvisionedSlot::active)
                        || now.duration_since(env.last_used) < idle_timeout;
                    if kept && env.is_usable() {
                        keep.push(env);
                    } else {
                        out.push(env);
                    }
                }
                *list = keep;
            }
            idle.retain(|_, list| !list.is_empty());
            out
        };
        if !expired.is_empty() {
            tracing::debug!(count = expired.len(), "stopping idle environments");
        }
        drop(expired);
        // Replace provisioned environments that died (crash, timeout).
        let short: Vec<(Arc<FunctionVersion>, Arc<ProvisionState>, usize)> =
            lock(&inner.provisioned)
                .values()
                .filter(|p| p.state.live.load(Ordering::Acquire) < p.target)
                .map(|p| (p.version.clone(), p.state.clone(), p.target))
                .collect();
        let pool = Pool { inner };
        for (version, state, target) in short {
            if let Err(e) = pool.fill(&version, &state, target).await {
                tracing::warn!(function = %version.key, version = version.version(), error = %e, "cannot restore provisioned concurrency");
            }
        }
    }
}
