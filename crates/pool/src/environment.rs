//! One execution environment: a process tree (from `sandbox`), its Runtime API endpoint (from
//! `runtime-api`) and its log stream. Lifecycle: `start` (init) → `invoke`, one at a time,
//! any number of times → dropped (killed) when it times out, crashes, is drained or goes idle.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use lamina_runtime_api::{InitSignal, Invocation, Outcome, RuntimeApi};
use lamina_sandbox::{
    Exit, Isolation, Limits, Mount, Network, Process, SandboxSpec, SpawnError, ISOLATED_RUNTIME_API,
};
use lamina_types::function::FunctionVersion;
use lamina_types::invoke::{PlatformError, LOG_TAIL_BYTES};
use lamina_types::runtime::{family, RuntimeFamily};

use crate::logs::{stream_path, LogStream};
use crate::runtimes::{command, interpreter_prefix, merged_layers, CommandError, View};
use crate::{FunctionOutcome, InvokeParams, InvokeResult, PoolConfig, ProvisionedSlot};

/// A started environment, idle or in use.
#[derive(Debug)]
pub(crate) struct Environment {
    pub(crate) version: Arc<FunctionVersion>,
    process: Process,
    api: RuntimeApi,
    logs: LogStream,
    /// Set until the first invocation reports it.
    init_duration: Option<Duration>,
    pub(crate) last_used: Instant,
    /// Set for an environment started ahead of time for provisioned concurrency.
    pub(crate) provisioned: Option<ProvisionedSlot>,
    healthy: bool,
    peak_memory_mb: u64,
    memory_sampled: Option<Instant>,
    /// Set by a memory sample that found an OOM kill in the environment's cgroup.
    oom_killed: bool,
}

/// How often `Max Memory Used` is re-read from `/proc` (process isolation).
const MEMORY_SAMPLE_PERIOD: Duration = Duration::from_millis(200);

/// A cold start that did not produce an environment: the invocation fails with this error.
#[derive(Debug)]
pub(crate) struct StartFailure {
    pub(crate) error_type: String,
    pub(crate) body: Bytes,
    pub(crate) log_tail: Vec<u8>,
}

impl Environment {
    /// Start an environment for `version` and wait for its runtime to finish init.
    pub(crate) async fn start(
        cfg: &PoolConfig,
        version: Arc<FunctionVersion>,
        request_id: &str,
        provisioned: Option<ProvisionedSlot>,
    ) -> Result<Environment, StartFailure> {
        let started = Instant::now();
        let id = environment_id();
        let stream = format!(
            "{}/[{}]{}",
            Utc::now().format("%Y/%m/%d"),
            version.version(),
            id
        );
        let group = version.log_group();
        let runtime = version.config.runtime.as_deref().unwrap_or_default();
        let task_root = &version.code_dir;
        let opt = if version.layers.is_empty() {
            None
        } else {
            let (root, layers) = (cfg.opt_dir.clone(), version.layers.clone());
            let merged = tokio::task::spawn_blocking(move || merged_layers(&root, &layers))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
            Some(merged.map_err(|e| {
                platform_failure(
                    "Runtime.Unknown",
                    &format!("cannot prepare the function's layers: {e}"),
                )
            })?)
        };
        let (isolation, network) = choose_sandbox(cfg, &version);
        let sandboxed = isolation == Isolation::Namespace;
        // The Runtime API: on the host's loopback, or made inside the environment's own
        // network namespace (then it is served once the environment exists).
        let early_api = if network == Network::None {
            None
        } else {
            Some(RuntimeApi::bind(cfg.bind_ip).await.map_err(|e| {
                platform_failure(
                    "Runtime.Unknown",
                    &format!("cannot open the Runtime API: {e}"),
                )
            })?)
        };
        let api_addr = early_api
            .as_ref()
            .map_or(ISOLATED_RUNTIME_API, RuntimeApi::addr)
            .to_string();
        let view = if sandboxed {
            View::lambda(opt.is_some())
        } else {
            View {
                task_root: task_root.clone(),
                opt: opt.clone(),
                runtime_dir: cfg.runtime_dir.clone(),
            }
        };
        let cmd = command(runtime, task_root, &view, &cfg.interpreters).map_err(|e| match e {
            CommandError::Unsupported(_) => {
                platform_failure("Runtime.InvalidRuntime", &e.to_string())
            }
            CommandError::NoInterpreter(_) => {
                platform_failure("Runtime.InvalidEntrypoint", &e.to_string())
            }
        })?;
        let mut mounts = Vec::new();
        if sandboxed {
            let ro = |source: &Path, target: &Path| Mount {
                source: source.to_path_buf(),
                target: target.to_path_buf(),
                writable: false,
            };
            mounts.push(ro(task_root, &view.task_root));
            if let (Some(host), Some(seen)) = (&opt, &view.opt) {
                mounts.push(ro(host, seen));
            }
            mounts.push(ro(&cfg.runtime_dir, &view.runtime_dir));
            if family(runtime) != Some(RuntimeFamily::Provided) {
                if let Some(prefix) = interpreter_prefix(&cmd.program) {
                    mounts.push(ro(&prefix, &prefix));
                }
            }
        }
        // lamina's runtime clients get a connection to the Runtime API made here (the other
        // end is served once the API is), and so need no connect of their own.
        let (api_ours, api_theirs) = if cmd.passes_runtime_api {
            let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| {
                platform_failure(
                    "Runtime.Unknown",
                    &format!("cannot connect the Runtime API: {e}"),
                )
            })?;
            (Some(ours), Some(Arc::new(OwnedFd::from(theirs))))
        } else {
            (None, None)
        };
        let memory_mb = u64::from(version.config.memory_size);
        let cpu_share = Limits::cpu_for_memory(memory_mb);
        let spec = SandboxSpec {
            program: cmd.program,
            args: cmd.args,
            env: environment_variables(
                cfg,
                &version,
                &api_addr,
                &stream,
                provisioned.is_some(),
                &view,
                sandboxed,
            ),
            cwd: view.task_root.clone(),
            isolation,
            network,
            mounts,
            memory_mb,
            tmp_mb: u64::from(version.config.ephemeral_storage.size),
            // Init runs without a CPU quota (runtimes start several threads: Node.js took 8 ms
            // longer under one vCPU); invocations get Lambda's share (MemorySize / 1769
            // vCPUs), set once init is done.
            cpu_millis: 0,
            passed_fd: api_theirs,
        };
        let spawned = cfg.sandbox.spawn(&spec).await;
        // Only the process holds the runtime's end from here.
        drop(spec);
        let (mut process, pipe) = spawned.map_err(|e| {
            let reason = match &e {
                SpawnError::NotFound { program } => format!(
                    "RequestId: {request_id} Error: fork/exec {}: no such file or directory",
                    program.display()
                ),
                SpawnError::PermissionDenied { program } => format!(
                    "RequestId: {request_id} Error: fork/exec {}: permission denied",
                    program.display()
                ),
                SpawnError::Other { .. } | SpawnError::Unavailable { .. } => {
                    format!("RequestId: {request_id} Error: {e}")
                }
            };
            platform_failure("Runtime.InvalidEntrypoint", &reason)
        })?;
        let mut api = match early_api {
            Some(api) => api,
            None => process
                .take_runtime_api_listener()
                .ok_or_else(|| std::io::Error::other("no listener from the sandbox"))
                .and_then(RuntimeApi::from_listener)
                .map_err(|e| {
                    platform_failure(
                        "Runtime.Unknown",
                        &format!("cannot open the Runtime API: {e}"),
                    )
                })?,
        };
        if let Some(ours) = api_ours {
            api.attach(ours).map_err(|e| {
                platform_failure(
                    "Runtime.Unknown",
                    &format!("cannot serve the Runtime API: {e}"),
                )
            })?;
        }
        let log_path = stream_path(
            &cfg.logs_dir,
            &version.key.account,
            &version.key.region,
            &group,
            &stream,
        );
        let logs = LogStream::start(&log_path, pipe);
        let ready = api.ready().expect("a new Runtime API has its init signal");
        let outcome = tokio::select! {
            signal = ready => Some(signal),
            _ = process.wait() => None,
            _ = tokio::time::sleep(cfg.init_timeout) => {
                process.kill();
                logs.drain_to_end(Duration::from_millis(200)).await;
                let message = format!(
                    "{} {request_id} Init phase timed out after {:.2} seconds",
                    lamina_types::time::iso_millis(Utc::now()),
                    cfg.init_timeout.as_secs_f64()
                );
                return Err(failure(&logs, "Sandbox.Timedout", &message));
            }
        };
        match outcome {
            Some(Ok(InitSignal::Ready)) => {
                process.set_cpu(cpu_share);
                Ok(Environment {
                    version,
                    process,
                    api,
                    logs,
                    // A provisioned environment's init is not part of any invocation.
                    init_duration: provisioned.is_none().then(|| started.elapsed()),
                    last_used: Instant::now(),
                    provisioned,
                    healthy: true,
                    peak_memory_mb: 0,
                    memory_sampled: None,
                    oom_killed: false,
                })
            }
            Some(Ok(InitSignal::Error { error_type, body })) => {
                process.kill();
                logs.drain_to_end(Duration::from_millis(200)).await;
                let error_type = error_type.unwrap_or_else(|| "Runtime.Unknown".into());
                logs.platform_fmt(format_args!(
                    "INIT_REPORT Init Duration: {} ms\tPhase: init\tStatus: error\tError Type: {error_type}",
                    Millis(started.elapsed())
                ));
                Err(StartFailure {
                    error_type,
                    body,
                    log_tail: logs.end_capture(LOG_TAIL_BYTES),
                })
            }
            Some(Err(_)) | None => {
                let exit = process.wait().await;
                logs.drain_to_end(Duration::from_millis(200)).await;
                let message =
                    format!("RequestId: {request_id} Error: Runtime exited with error: {exit}");
                Err(failure(&logs, exit_error_type(&process), &message))
            }
        }
    }

    /// Kill the process tree and wait (bounded) until its first process is reaped.
    pub(crate) async fn stop(mut self) {
        self.process.kill();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.process.wait()).await;
    }

    /// Freeze the idle environment (see [`crate::FREEZE_AFTER`]); thawed by its next invoke.
    pub(crate) fn freeze(&mut self) {
        if !self.process.is_frozen() {
            self.process.freeze();
        }
    }

    /// Write the log lines still buffered to the stream's file.
    pub(crate) fn flush_logs(&self) {
        self.logs.flush();
    }

    /// Whether the environment can take another invocation.
    pub(crate) fn is_usable(&mut self) -> bool {
        self.healthy && !self.process.has_exited()
    }

    /// Run one invocation to its end.
    pub(crate) async fn invoke(&mut self, params: InvokeParams) -> InvokeResult {
        let request_id = params.request_id.clone();
        let timeout = Duration::from_secs(u64::from(self.version.config.timeout));
        let started = Instant::now();
        let deadline_ms = Utc::now().timestamp_millis() as u64 + timeout.as_millis() as u64;
        self.process.thaw();
        self.logs.begin_capture();
        self.logs.platform_fmt(format_args!(
            "START RequestId: {request_id} Version: {}",
            self.version.version()
        ));
        let rx = self.api.dispatch(Invocation {
            request_id: request_id.clone(),
            payload: params.payload,
            deadline_ms,
            invoked_function_arn: params.invoked_function_arn,
            trace_id: params.trace_id,
            client_context: params.client_context,
            cognito_identity: None,
        });
        let mut status = None;
        let outcome = tokio::select! {
            answer = rx => match answer {
                Ok(Outcome::Response { body, content_type }) => {
                    FunctionOutcome::Success { body, content_type }
                }
                Ok(Outcome::Error { error_type, body }) => FunctionOutcome::Error {
                    error_type: error_type.unwrap_or_else(|| "Unhandled".into()),
                    body,
                },
                Ok(Outcome::ResponseTooLarge { size }) => {
                    let message = format!(
                        "Response payload size ({size} bytes) exceeded maximum allowed payload size ({} bytes).",
                        lamina_runtime_api::MAX_RESPONSE_BYTES
                    );
                    platform_error("Function.ResponseSizeTooLarge", &message)
                }
                Err(_) => {
                    self.healthy = false;
                    platform_error("Runtime.Unknown", "the Runtime API closed")
                }
            },
            exit = self.process.wait() => {
                self.healthy = false;
                status = Some("error");
                self.exited(&request_id, exit).await
            }
            _ = tokio::time::sleep(timeout) => {
                self.healthy = false;
                status = Some("timeout");
                self.api.abandon();
                self.process.kill();
                self.logs.drain_to_end(Duration::from_millis(200)).await;
                let message = format!(
                    "{} {request_id} Task timed out after {:.2} seconds",
                    lamina_types::time::iso_millis(Utc::now()),
                    timeout.as_secs_f64()
                );
                self.logs.platform_line(&message);
                platform_error("Sandbox.Timedout", &message)
            }
        };
        let duration = started.elapsed();
        let memory_used = self.peak_memory_mb();
        if self.healthy && self.oom_killed {
            // The memory cgroup killed a process of this environment (cgroup v1 kills one
            // process, not the tree): the environment is not trusted again.
            self.healthy = false;
            self.process.kill();
        }
        if self.healthy {
            self.logs.drain();
        }
        self.logs
            .platform_fmt(format_args!("END RequestId: {request_id}"));
        let tail = ReportTail {
            init: self.init_duration.take(),
            status,
        };
        self.logs.platform_fmt(format_args!(
            "REPORT RequestId: {request_id}\tDuration: {} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t{tail}",
            Millis(duration),
            duration.as_nanos().div_ceil(1_000_000).max(1),
            self.version.config.memory_size,
            memory_used,
        ));
        let log_tail = self.logs.end_capture(LOG_TAIL_BYTES);
        self.last_used = Instant::now();
        InvokeResult {
            executed_version: self.version.version().to_string(),
            outcome,
            log_tail,
            duration,
        }
    }

    /// `Max Memory Used`, in MB. Reading `/proc/{pid}/status` costs about a tenth of the
    /// platform's CPU per warm invoke, so it is read at most every [`MEMORY_SAMPLE_PERIOD`]; the
    /// peak only grows, so a recent sample is a lower bound that is at most that old. The same
    /// sample notes OOM kills of a process other than the runtime (the runtime's own death is
    /// seen at once, as an exit), keeping a cgroup file read off every warm invoke.
    fn peak_memory_mb(&mut self) -> u64 {
        let due = self
            .memory_sampled
            .is_none_or(|t| t.elapsed() >= MEMORY_SAMPLE_PERIOD);
        if due {
            if let Some(bytes) = self.process.peak_memory_bytes() {
                self.peak_memory_mb = self.peak_memory_mb.max(bytes.div_ceil(1024 * 1024));
            }
            self.oom_killed = self.process.out_of_memory();
            self.memory_sampled = Some(Instant::now());
        }
        self.peak_memory_mb
    }

    async fn exited(&mut self, request_id: &str, exit: Exit) -> FunctionOutcome {
        self.logs.drain_to_end(Duration::from_millis(200)).await;
        let message = format!("RequestId: {request_id} Error: Runtime exited with error: {exit}");
        self.logs.platform_line(&message);
        platform_error(exit_error_type(&self.process), &message)
    }
}

/// The error type of a runtime that exited: `Runtime.OutOfMemory` when the memory cgroup
/// killed something, else `Runtime.ExitError`.
fn exit_error_type(process: &Process) -> &'static str {
    if process.out_of_memory() {
        "Runtime.OutOfMemory"
    } else {
        "Runtime.ExitError"
    }
}

/// The isolation level and network for `version`: the server's, or the function's own
/// (`LAMINA_ISOLATION`, `LAMINA_NETWORK` in its environment variables) where stricter.
fn choose_sandbox(cfg: &PoolConfig, version: &FunctionVersion) -> (Isolation, Network) {
    use lamina_types::validate::{ISOLATION_VARIABLE, NETWORK_VARIABLE};
    let find = |name: &str| {
        version
            .variables()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v.clone())
    };
    let mut isolation = find(ISOLATION_VARIABLE)
        .and_then(|v| v.parse::<Isolation>().ok())
        .map_or(cfg.sandbox.isolation(), |own| {
            own.max(cfg.sandbox.isolation())
        });
    let mut network = find(NETWORK_VARIABLE)
        .and_then(|v| v.parse::<Network>().ok())
        .map_or(cfg.network, |own| own.max(cfg.network));
    match (isolation, network) {
        // A network of its own needs the namespace level (an invoke then fails clearly on a
        // host without it, rather than running on the host's network).
        (Isolation::Process, Network::None) if find(NETWORK_VARIABLE).is_some() => {
            isolation = Isolation::Namespace;
        }
        // The server's own `--network none` means nothing at the process level.
        (Isolation::Process, Network::None) => network = Network::Host,
        _ => {}
    }
    (isolation, network)
}

fn failure(logs: &LogStream, error_type: &str, message: &str) -> StartFailure {
    logs.platform_line(message);
    StartFailure {
        error_type: error_type.to_string(),
        body: Bytes::from(
            PlatformError {
                error_message: message,
                error_type,
            }
            .to_json(),
        ),
        log_tail: logs.end_capture(LOG_TAIL_BYTES),
    }
}

fn platform_failure(error_type: &str, message: &str) -> StartFailure {
    StartFailure {
        error_type: error_type.to_string(),
        body: Bytes::from(
            PlatformError {
                error_message: message,
                error_type,
            }
            .to_json(),
        ),
        log_tail: format!("{message}\n").into_bytes(),
    }
}

pub(crate) fn platform_error(error_type: &str, message: &str) -> FunctionOutcome {
    FunctionOutcome::Error {
        error_type: error_type.to_string(),
        body: Bytes::from(
            PlatformError {
                error_message: message,
                error_type,
            }
            .to_json(),
        ),
    }
}

/// The optional end of a `REPORT` line: `Init Duration` after a cold start, `Status` after a
/// failure.
struct ReportTail<'a> {
    init: Option<Duration>,
    status: Option<&'a str>,
}

impl std::fmt::Display for ReportTail<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(init) = self.init {
            write!(f, "Init Duration: {} ms\t", Millis(init))?;
        }
        if let Some(status) = self.status {
            write!(f, "Status: {status}")?;
        }
        Ok(())
    }
}

/// A duration in milliseconds with two decimals, as in `REPORT` lines (`12.34`), written with
/// integer arithmetic rather than by formatting an `f64` with a precision.
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hundredths of a millisecond, rounded half up.
        let hundredths = (self.0.as_nanos() + 5_000) / 10_000;
        write!(f, "{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

/// 32 lower-case hex digits, as Lambda's environment ids in log stream names.
fn environment_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The complete environment of the function process: Lambda's reserved and default variables,
/// then the function's own (which may override the defaults but never the reserved ones).
fn environment_variables(
    cfg: &PoolConfig,
    v: &FunctionVersion,
    runtime_api: &str,
    stream: &str,
    provisioned: bool,
    view: &View,
    sandboxed: bool,
) -> Vec<(String, String)> {
    let c = &v.config;
    let runtime = c.runtime.as_deref().unwrap_or_default();
    let task_root = view.task_root.display().to_string();
    let runtime_dir = view.runtime_dir.display().to_string();
    // The layers' directory: /opt in a sandbox; the merged directory itself in a plain process.
    let opt_dir = view
        .opt
        .as_ref()
        .map_or_else(|| "/opt".to_string(), |p| p.display().to_string());
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            format!("/usr/local/bin:/usr/bin/:/bin:{opt_dir}/bin"),
        ),
        ("LANG".into(), "en_US.UTF-8".into()),
        (
            "LD_LIBRARY_PATH".into(),
            format!("/lib64:/usr/lib64:{runtime_dir}:{runtime_dir}/lib:{task_root}:{task_root}/lib:{opt_dir}/lib"),
        ),
        ("TZ".into(), ":UTC".into()),
        ("AWS_XRAY_CONTEXT_MISSING".into(), "LOG_ERROR".into()),
    ];
    if family(runtime) == Some(RuntimeFamily::Node) {
        let major = runtime.trim_start_matches("nodejs").trim_end_matches(".x");
        env.push((
            "NODE_PATH".into(),
            format!("{opt_dir}/nodejs/node{major}/node_modules:{opt_dir}/nodejs/node_modules:{runtime_dir}/node_modules"),
        ));
    }
    if let (Some(opt), false) = (&view.opt, sandboxed) {
        env.push(("LAMINA_OPT_DIR".into(), opt.display().to_string()));
    }
    // The function's own variables may replace the defaults above...
    for (k, val) in v.variables() {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), val.clone()));
    }
    // ...but never these.
    let mut reserved: Vec<(&str, String)> = vec![
        ("_HANDLER", c.handler.clone().unwrap_or_default()),
        ("AWS_REGION", v.key.region.clone()),
        ("AWS_DEFAULT_REGION", v.key.region.clone()),
        ("AWS_LAMBDA_FUNCTION_NAME", v.key.name.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", c.memory_size.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", c.version.clone()),
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE",
            if provisioned {
                "provisioned-concurrency"
            } else {
                "on-demand"
            }
            .into(),
        ),
        ("AWS_LAMBDA_LOG_GROUP_NAME", v.log_group()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream.to_string()),
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("LAMBDA_TASK_ROOT", task_root.clone()),
        ("LAMBDA_RUNTIME_DIR", runtime_dir),
        ("AWS_ACCESS_KEY_ID", cfg.credentials.access_key_id.clone()),
        ("AWS_ACCESS_KEY", cfg.credentials.access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY",
            cfg.credentials.secret_access_key.clone(),
        ),
        ("AWS_SESSION_TOKEN", cfg.credentials.session_token.clone()),
    ];
    if family(runtime) != Some(RuntimeFamily::Provided) {
        reserved.push(("AWS_EXECUTION_ENV", format!("AWS_Lambda_{runtime}")));
    }
    if let Some(format) = &c.logging_config.log_format {
        reserved.push(("AWS_LAMBDA_LOG_FORMAT", format.clone()));
    }
    for (k, val) in reserved {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), val));
    }
    env
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn report_durations_have_two_decimals_rounded_half_up() {
        let show = |d: Duration| super::Millis(d).to_string();
        assert_eq!(show(Duration::ZERO), "0.00");
        assert_eq!(show(Duration::from_micros(4)), "0.00");
        assert_eq!(show(Duration::from_micros(5)), "0.01");
        assert_eq!(show(Duration::from_micros(1_234)), "1.23");
        assert_eq!(show(Duration::from_micros(1_235)), "1.24");
        assert_eq!(show(Duration::from_micros(99_999)), "100.00");
        assert_eq!(show(Duration::from_secs(900)), "900000.00");
    }
}
