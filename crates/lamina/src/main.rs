//! `lamina`: a self-hosted AWS Lambda in one binary.
//!
//! - `lamina serve`: the Lambda API on one port (default `127.0.0.1:9001`), state in a data
//!   directory (default `./.lamina`).
//! - `lamina doctor`: what this host offers lamina (interpreters per runtime, isolation level).
//! - `lamina sandbox-helper`: internal; the single-threaded process that starts sandboxed
//!   environments for `serve` (see `lamina_sandbox::helper`).
//!
//! This crate only wires the others together: config → store → pool → invoker → API.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use lamina_api::ApiState;
use lamina_invoke::Invoker;
use lamina_pool::{Credentials, Interpreters, Pool, PoolConfig};
use lamina_sandbox::{HelperCommand, Isolation, Network, Sandbox, SandboxConfig};
use lamina_store::sqlite::SqliteStore;
use lamina_store::Store;

#[derive(Debug, Parser)]
#[command(name = "lamina", version, about = "A self-hosted AWS Lambda")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Lambda API and run functions.
    Serve(ServeArgs),
    /// Report what this host offers lamina.
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
struct DoctorArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

#[derive(Debug, Args)]
struct SandboxArgs {
    /// Isolation of execution environments: `namespace` (namespaces, cgroups, seccomp; the
    /// default, where the kernel allows it) or `process` (plain child processes).
    #[arg(long, env = "LAMINA_ISOLATION", default_value = "namespace")]
    isolation: Isolation,
    /// Network of sandboxed environments: `host` (as on Lambda) or `none` (an empty network
    /// namespace of their own; the Runtime API is still reachable on 127.0.0.1:9001).
    #[arg(long, env = "LAMINA_NETWORK", default_value = "host")]
    network: Network,
    /// Remount the host's cgroup2 with `favordynmods` (Linux 6.0+) so that moving a new
    /// environment into its cgroup does not wait for an RCU grace period (5-15 ms of every
    /// cold start). Host-wide and lasting; `lamina doctor` says whether it is set.
    #[arg(long, env = "LAMINA_CGROUP_FAVORDYNMODS")]
    cgroup_favordynmods: bool,
}

impl SandboxArgs {
    /// Start the sandbox (and its helper process) for `data_dir`.
    fn start(&self, data_dir: &Path) -> Sandbox {
        Sandbox::start(&SandboxConfig {
            isolation: self.isolation,
            // The running binary itself, even if the file was replaced since it started.
            helper: HelperCommand {
                program: PathBuf::from("/proc/self/exe"),
                args: vec![HELPER_COMMAND.into()],
            },
            state_dir: data_dir.join("sandbox"),
            favor_dynamic_changes: self.cgroup_favordynmods,
        })
    }
}

/// The hidden subcommand that runs the sandbox helper.
const HELPER_COMMAND: &str = "sandbox-helper";

#[derive(Debug, Args)]
struct CommonArgs {
    /// Directory for the database, code packages and logs.
    #[arg(long, env = "LAMINA_DATA_DIR", default_value = "./.lamina")]
    data_dir: PathBuf,
    /// Interpreter for a runtime, e.g. `python3.12=/usr/bin/python3.12` (repeatable).
    #[arg(
        long = "interpreter",
        env = "LAMINA_INTERPRETERS",
        value_delimiter = ','
    )]
    interpreters: Vec<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address of the Lambda API.
    #[arg(long, env = "LAMINA_LISTEN", default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// Seconds an idle execution environment is kept before it is stopped.
    #[arg(long, env = "LAMINA_IDLE_TIMEOUT", default_value_t = 300.0)]
    idle_timeout: f64,
    /// Seconds a runtime may take to initialise.
    #[arg(long, env = "LAMINA_INIT_TIMEOUT", default_value_t = 10.0)]
    init_timeout: f64,
    /// The account concurrency limit (invocations running at once per account and region).
    #[arg(long, env = "LAMINA_CONCURRENCY_LIMIT", default_value_t = 1000)]
    concurrency_limit: u32,
    /// Address the per-environment Runtime API endpoints listen on.
    #[arg(long, env = "LAMINA_RUNTIME_API_IP", default_value = "127.0.0.1")]
    runtime_api_ip: IpAddr,
    /// Seconds before each retry of an `Event` invocation that failed (AWS: about 60, then 120).
    #[arg(long, env = "LAMINA_ASYNC_RETRY_DELAYS", value_delimiter = ',', default_values_t = [60.0, 120.0])]
    async_retry_delays: Vec<f64>,
    /// First and largest back-off, seconds, of a throttled `Event` invocation (AWS: 1 and 300).
    #[arg(long, env = "LAMINA_ASYNC_BACKOFF", value_delimiter = ',', default_values_t = [1.0, 300.0])]
    async_backoff: Vec<f64>,
    /// `Event` invocations run at once (a throttled or delayed event does not hold a slot).
    #[arg(long, env = "LAMINA_ASYNC_CONCURRENCY", default_value_t = 64)]
    async_concurrency: usize,
    /// Threads that run lamina's own work (the APIs, the Runtime API, dispatch). 0 picks half
    /// the cores, at least one: lamina's share of an invoke is small next to the function's,
    /// and on a small machine wake-ups between threads cost more than a second thread gains
    /// (BENCHMARKS.md). With one thread lamina runs on tokio's single-threaded scheduler, which
    /// does less per task switch than the work-stealing one with one worker.
    #[arg(long, env = "LAMINA_WORKER_THREADS", default_value_t = 0)]
    worker_threads: usize,
    #[command(flatten)]
    sandbox: SandboxArgs,
}

/// The async worker's settings from the command line.
fn async_settings(args: &ServeArgs) -> Result<lamina_invoke::AsyncSettings> {
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let [first, max] = args.async_backoff[..] else {
        bail!("--async-backoff expects FIRST,MAX seconds");
    };
    if args.async_retry_delays.is_empty() {
        bail!("--async-retry-delays expects at least one delay");
    }
    Ok(lamina_invoke::AsyncSettings {
        retry_delays: args.async_retry_delays.iter().copied().map(secs).collect(),
        backoff: (secs(first), secs(max.max(first))),
        concurrency: args.async_concurrency.max(1),
    })
}

fn main() -> Result<()> {
    // The sandbox helper must stay single-threaded: it is dispatched before anything starts a
    // thread (logging, the async runtime).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == HELPER_COMMAND)
    {
        return lamina_sandbox::helper::main().context("sandbox helper");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAMINA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let workers = match &cli.command {
        Command::Serve(args) => worker_threads(args.worker_threads),
        Command::Doctor(_) => 1,
    };
    // One thread: the single-threaded scheduler (its run queue needs no synchronisation; about
    // 1,400 fewer instructions per warm invoke by callgrind, and more invokes per second at
    // c=8 in each of three alternating runs, BENCHMARKS.md). Blocking work (the store, zips,
    // layer merges) goes to tokio's blocking pool either way.
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Doctor(args) => doctor(&args.common, &args.sandbox),
    }
}

/// `--worker-threads`: as asked, or half the cores (at least one) for 0.
fn worker_threads(asked: usize) -> usize {
    if asked > 0 {
        return asked;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores.div_ceil(2)
}

/// `--interpreter RUNTIME=PATH` choices, checked.
fn interpreter_overrides(args: &CommonArgs) -> Result<BTreeMap<String, PathBuf>> {
    let mut overrides = BTreeMap::new();
    for spec in &args.interpreters {
        let Some((runtime, path)) = spec.split_once('=') else {
            bail!("--interpreter expects RUNTIME=PATH, got {spec:?}");
        };
        if lamina_types::runtime::family(runtime).is_none() {
            bail!("--interpreter: {runtime:?} is not a runtime lamina serves");
        }
        overrides.insert(runtime.to_string(), PathBuf::from(path));
    }
    Ok(overrides)
}

/// A random key kept in the data directory, so `Code.Location` URLs survive restarts.
fn url_key(data_dir: &Path) -> Result<[u8; 32]> {
    let path = data_dir.join("url.key");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
    }
    let key: [u8; 32] = rand::random();
    std::fs::write(&path, key).with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

async fn serve(args: ServeArgs) -> Result<()> {
    // Finding the interpreters runs them (pyenv's shims take a few hundred milliseconds), so it
    // runs beside the rest of the start; lamina listens before it is done.
    let interpreters = Interpreters::discover_in_background(
        std::env::var("PATH").unwrap_or_default(),
        interpreter_overrides(&args.common)?,
    );
    // Everything derived from the data directory (code trees, logs, runtime clients) is handed
    // to function processes that run elsewhere, so it must be absolute.
    std::fs::create_dir_all(&args.common.data_dir)
        .with_context(|| format!("creating {}", args.common.data_dir.display()))?;
    let data_dir = &std::fs::canonicalize(&args.common.data_dir)?;
    let sqlite = SqliteStore::open(data_dir)
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let blobs = sqlite.blobs().clone();
    let store: Arc<dyn Store> = Arc::new(sqlite);
    let runtime_dir = data_dir.join("runtime");
    lamina_pool::runtimes::install_clients(&runtime_dir)
        .with_context(|| format!("installing runtime clients in {}", runtime_dir.display()))?;
    // Started from the main thread, which lives as long as the daemon: the helper's
    // parent-death signal is tied to the thread that started it.
    let sandbox = Arc::new(args.sandbox.start(data_dir));
    for line in sandbox.describe() {
        if line.starts_with("warning: ") {
            tracing::warn!("sandbox {line}");
        } else {
            tracing::info!("sandbox {line}");
        }
    }
    let pool = Pool::new(PoolConfig {
        logs_dir: data_dir.join("logs"),
        opt_dir: data_dir.join("opt"),
        runtime_dir,
        interpreters,
        idle_timeout: Duration::from_secs_f64(args.idle_timeout.max(0.01)),
        init_timeout: Duration::from_secs_f64(args.init_timeout.max(0.01)),
        bind_ip: args.runtime_api_ip,
        credentials: Credentials {
            access_key_id: "AKIALAMINAFUNCTION00".into(),
            secret_access_key: "lamina-function-secret".into(),
            session_token: "lamina-function-session".into(),
        },
        sandbox,
        network: args.sandbox.network,
    });
    let invoker = Invoker::with_settings(
        store.clone(),
        pool,
        args.concurrency_limit,
        async_settings(&args)?,
    );
    let settled = lamina_api::settle_all(store.clone(), &invoker).await?;
    let resumed = invoker.resume().await?;
    let provisioned = lamina_api::provisioned::restore_provisioned(store.clone(), &invoker).await?;
    if settled + resumed + provisioned > 0 {
        tracing::info!(
            settled,
            resumed,
            provisioned,
            "recovered state from the last run"
        );
    }
    let pool = invoker.pool().clone();
    let state = Arc::new(ApiState {
        store,
        blobs,
        invoker,
        url_key: url_key(data_dir)?,
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to learn the port.
    println!("lamina listening on http://{addr}");
    tokio::select! {
        _ = lamina_api::serve(listener, state) => {}
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    pool.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn doctor(args: &CommonArgs, sandbox: &SandboxArgs) -> Result<()> {
    println!("lamina {}", env!("CARGO_PKG_VERSION"));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("kernel: {}", kernel.trim());
    println!("data directory: {}", args.data_dir.display());
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    for line in sandbox.start(&data_dir).describe() {
        println!("{line}");
    }
    println!(
        "network: {} (sandboxed environments; --network, or LAMINA_NETWORK per function)",
        sandbox.network
    );
    println!("runtimes:");
    let found = Interpreters::discover(
        &std::env::var("PATH").unwrap_or_default(),
        &interpreter_overrides(args)?,
    );
    for runtime in lamina_types::runtime::SERVED_RUNTIMES {
        match lamina_types::runtime::family(runtime) {
            Some(lamina_types::runtime::RuntimeFamily::Provided) => {
                println!("  {runtime:<16} the package's bootstrap");
            }
            _ => match found.get(runtime) {
                Some(path) => {
                    let version = std::process::Command::new(path)
                        .arg("--version")
                        .output()
                        .map(|o| {
                            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
                            String::from_utf8_lossy(&text).trim().to_string()
                        })
                        .unwrap_or_else(|e| format!("cannot run: {e}"));
                    println!("  {runtime:<16} {} ({version})", path.display());
                }
                None => println!("  {runtime:<16} MISSING: no interpreter found; use --interpreter {runtime}=PATH"),
            },
        }
    }
    Ok(())
}
