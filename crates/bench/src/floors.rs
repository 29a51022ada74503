//! Floors: what the machine does without lamina, measured in the same run as everything else.
//!
//! - HTTP/1.1 keep-alive round trip on loopback between two processes (this binary's
//!   `floor-server` mode, a minimal hyper server; the client is the bench's own [`crate::http`]
//!   client, the same one that drives lamina), at concurrency 1 and at cores × 4.
//! - Spawning a small binary and waiting for it to exit (this binary's `noop` mode).
//! - Starting the bare interpreters lamina uses, with an environment like the one lamina gives
//!   functions: `python3 -c pass`, `node -e 0` to their exit, and the same to their first output
//!   (without the interpreter's teardown, which a cold start does not pay: the cold-start floor).
//! - `write` + `fdatasync` of a small record on the data directory's file system: what storing
//!   one `Event` durably costs at least.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::http::{closed_loop, LoadResult, Response};
use crate::lamina::invoke_request;
use crate::procfs;
use crate::report::{Floor, Report, Row, Section, Unit};
use crate::setup::Setup;
use crate::stats::Samples;
use crate::Plan;

/// A server the bench runs as a child process (a mode of this binary): it prints
/// `{prefix}{address}` once listening, and stops when its stdin closes.
#[derive(Debug)]
pub(crate) struct ChildServer {
    // Holding the child keeps its stdin open; dropping it kills the server.
    child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
}

/// The `floor-server` child process.
pub(crate) type FloorServer = ChildServer;

impl ChildServer {
    /// The minimal HTTP server (`floor-server` mode).
    pub(crate) async fn start(bench: &Path) -> Result<ChildServer> {
        let mut cmd = Command::new(bench);
        cmd.arg("floor-server");
        ChildServer::spawn(cmd, "floor-server listening on ").await
    }

    /// Start `cmd` and wait for its `{prefix}{address}` line.
    pub(crate) async fn spawn(mut cmd: Command, prefix: &str) -> Result<ChildServer> {
        let what = prefix.split(' ').next().unwrap_or(prefix).to_string();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let pid = child.id().with_context(|| format!("{what} exited"))?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .with_context(|| format!("{what} did not start"))??
            .with_context(|| format!("{what} exited"))?;
        let addr = line
            .strip_prefix(prefix)
            .with_context(|| format!("unexpected line from {what}: {line:?}"))?
            .parse()?;
        Ok(ChildServer { child, addr, pid })
    }

    /// Stop the server and wait for it (so that its CPU time is counted as the bench's).
    pub(crate) async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Latency percentiles and throughput of one closed-loop run, each a floor.
#[derive(Debug, Clone)]
pub(crate) struct LoadFloors {
    pub(crate) concurrency: usize,
    pub(crate) p50: Floor,
    pub(crate) p90: Floor,
    pub(crate) p99: Floor,
    pub(crate) max: Floor,
    pub(crate) rate: Floor,
    /// CPU time the server used per request.
    pub(crate) cpu: Floor,
    /// CPU time the server's runtimes used per request (the protocol floor only).
    pub(crate) cpu_runtimes: Option<Floor>,
}

impl LoadFloors {
    /// The floor of a percentile row by its stat name.
    pub(crate) fn by_stat(&self, stat: &str) -> &Floor {
        match stat {
            "p50" => &self.p50,
            "p90" => &self.p90,
            "p99" => &self.p99,
            _ => &self.max,
        }
    }
}

/// Every floor of the run.
#[derive(Debug)]
pub(crate) struct Floors {
    /// Round trip at concurrency 1, then at cores × 4.
    pub(crate) rtt: Vec<LoadFloors>,
    /// Each Rust no-op behind the protocol floor ([`crate::protocol`]), at concurrency 1 and
    /// at cores × 4, with the name lamina's copy of it is deployed under; empty when warm
    /// invokes are not measured.
    pub(crate) protocol: Vec<(&'static str, LoadFloors)>,
    pub(crate) spawn: StartFloor,
    pub(crate) python: Option<StartFloor>,
    pub(crate) node: Option<StartFloor>,
    pub(crate) fsync: Floor,
}

/// p50 and p99 of starting a process (to its exit or first output), and how to start it once
/// more: the cold starts also time it in each of their rounds.
#[derive(Debug, Clone)]
pub(crate) struct StartFloor {
    pub(crate) p50: Floor,
    pub(crate) p99: Floor,
    /// What is started, as the table names it (`node -e (write a line)`).
    pub(crate) what: String,
    pub(crate) probe: StartProbe,
}

fn start_floor(
    report: &mut Report,
    subject: &str,
    what: &str,
    probe: StartProbe,
    s: &Samples,
) -> StartFloor {
    let mut row = |stat: &str, v: f64| {
        report.floor(Row::new(Section::Floors, subject, stat, v, Unit::Secs).n(s.len()))
    };
    StartFloor {
        p50: row("p50", s.p50()),
        p99: row("p99", s.p99()),
        what: what.to_string(),
        probe,
    }
}

impl Floors {
    pub(crate) fn rtt_at(&self, concurrency: usize) -> &LoadFloors {
        self.rtt
            .iter()
            .find(|f| f.concurrency == concurrency)
            .unwrap_or(&self.rtt[0])
    }
}

/// A Rust no-op (`runtime`, called `what` in the table) behind the protocol floor,
/// `concurrency` clients and as many runtimes.
async fn protocol_floor(
    setup: &Setup,
    (runtime, what): (&Path, &str),
    concurrency: usize,
    n: usize,
    report: &mut Report,
) -> Result<LoadFloors> {
    let floor = crate::protocol::start(&setup.bench, runtime, concurrency).await?;
    let raw = Arc::new(invoke_request("floor", b"{}"));
    let result = async {
        // Unmeasured first, as for lamina's warm rows.
        closed_loop(
            floor.addr,
            raw.clone(),
            concurrency,
            (20 * concurrency).max(n / 10),
            ok_200,
        )
        .await?;
        let before = procfs::tree_cpu_secs(floor.pid);
        let result = closed_loop(floor.addr, raw.clone(), concurrency, n, ok_200).await?;
        let after = procfs::tree_cpu_secs(floor.pid);
        anyhow::Ok((result, after.0 - before.0, after.1 - before.1))
    }
    .await;
    floor.stop().await;
    let (result, platform_cpu, runtimes_cpu) = result?;
    let subject =
        format!("{what} behind a minimal Lambda platform (protocol floor), c={concurrency}");
    let mut f = load_rows(report, Section::Floors, &subject, &result, None, None)
        .context("protocol floor rows")?;
    f.concurrency = concurrency;
    let mut cpu_row = |whose: &str, secs: f64| {
        report.floor(
            Row::new(
                Section::Floors,
                format!("protocol floor's CPU per invoke, {what}, {whose}, c={concurrency}"),
                "cpu/req",
                secs / n as f64,
                Unit::Secs,
            )
            .n(n),
        )
    };
    f.cpu = cpu_row("platform", platform_cpu);
    f.cpu_runtimes = Some(cpu_row("runtimes", runtimes_cpu));
    Ok(f)
}

fn ok_200(resp: &Response) -> Result<()> {
    if resp.status != 200 {
        bail!("floor server answered {}", resp.status);
    }
    Ok(())
}

/// Percentile rows (p50, p90, p99, max) and a throughput row of a load run; returns the floors
/// when `floor` is set, or adds rows compared with `vs` otherwise.
pub(crate) fn load_rows(
    report: &mut Report,
    section: Section,
    subject: &str,
    result: &LoadResult,
    vs: Option<&LoadFloors>,
    iso: Option<&str>,
) -> Option<LoadFloors> {
    let s = Samples::from_durations(&result.latencies);
    let n = s.len();
    let mut row = |stat: &str, value: f64, unit: Unit| {
        let mut r = Row::new(section, subject, stat, value, unit).n(n);
        if let Some(level) = iso {
            r = r.iso(level);
        }
        match vs {
            None => Some(report.floor(r)),
            Some(f) => {
                let floor = if unit == Unit::PerSec {
                    &f.rate
                } else {
                    f.by_stat(stat)
                };
                report.add(r.vs(floor));
                None
            }
        }
    };
    let p50 = row("p50", s.p50(), Unit::Secs);
    let p90 = row("p90", s.p90(), Unit::Secs);
    let p99 = row("p99", s.p99(), Unit::Secs);
    let max = row("max", s.max(), Unit::Secs);
    let rate = row("throughput", result.throughput(), Unit::PerSec);
    Some(LoadFloors {
        concurrency: 0,
        p50: p50?,
        p90: p90?,
        p99: p99?,
        max: max?,
        rate: rate?,
        cpu: Floor {
            id: String::new(),
            value: 0.0,
        },
        cpu_runtimes: None,
    })
}

pub(crate) async fn measure(
    setup: &Setup,
    plan: &Plan,
    server: &FloorServer,
    report: &mut Report,
) -> Result<Floors> {
    // The same request bytes an invoke sends, to the minimal server.
    let raw = Arc::new(invoke_request("bench-noop", b"{}"));
    let mut rtt = Vec::new();
    for (concurrency, n) in [(1, plan.warm_c1), (plan.many, plan.warm_many)] {
        closed_loop(server.addr, raw.clone(), concurrency, n / 5, ok_200).await?;
        let cpu_before = procfs::cpu_secs(server.pid).unwrap_or(0.0);
        let result = closed_loop(server.addr, raw.clone(), concurrency, n, ok_200).await?;
        let cpu = procfs::cpu_secs(server.pid).unwrap_or(0.0) - cpu_before;
        let subject = format!("HTTP round trip, keep-alive, minimal server, c={concurrency}");
        let mut f = load_rows(report, Section::Floors, &subject, &result, None, None)
            .context("floor rows")?;
        f.concurrency = concurrency;
        f.cpu = report.floor(
            Row::new(
                Section::Floors,
                format!("minimal server's CPU per request, c={concurrency}"),
                "cpu/req",
                cpu / n as f64,
                Unit::Secs,
            )
            .n(n),
        );
        rtt.push(f);
    }
    let mut protocol = Vec::new();
    if plan.wants(crate::Group::Warm) {
        for (name, runtime, what) in [
            (
                crate::RUST_NOOP,
                &setup.rust_noop,
                "rust no-op (lambda_runtime)",
            ),
            (
                crate::RUST_MIN,
                &setup.rust_min,
                "rust no-op (minimal client)",
            ),
        ] {
            for (concurrency, n) in [(1, plan.warm_c1), (plan.many, plan.warm_many)] {
                let f = protocol_floor(setup, (runtime, what), concurrency, n, report).await?;
                protocol.push((name, f));
            }
        }
    }

    let bench = setup.bench.clone();
    let probe = StartProbe::new(Until::Exit, move || {
        let mut c = std::process::Command::new(&bench);
        c.arg("noop");
        c
    });
    let samples = probe.run_many(plan.spawn).await?;
    let spawn = start_floor(
        report,
        "spawn a small binary to exit (lamina-bench noop)",
        "lamina-bench noop",
        probe,
        &samples,
    );
    // Each interpreter twice: to its exit as the issue words it, and to its first output,
    // which leaves out the interpreter's teardown (a cold start never pays it).
    let mut interpreters = Vec::new();
    for (found, exit_args, ready_args, exit_label, ready_label, what) in [
        (
            setup.python.as_ref(),
            &["-c", "pass"][..],
            &["-u", "-c", "print()"][..],
            "bare interpreter to exit: python3 -c pass",
            "bare interpreter to first output: python3 -u -c print()",
            "python3 -u -c print()",
        ),
        (
            setup.node.as_ref(),
            &["-e", "0"][..],
            &["-e", "process.stdout.write('\\n')"][..],
            "bare interpreter to exit: node -e 0",
            "bare interpreter to first output: node -e (write a line)",
            "node -e (write a line)",
        ),
    ] {
        let Some((path, _)) = found else {
            interpreters.push(None);
            continue;
        };
        let s = interpreter(path, exit_args, Until::Exit)
            .run_many(plan.interpreter)
            .await?;
        report.floor(Row::new(Section::Floors, exit_label, "p50", s.p50(), Unit::Secs).n(s.len()));
        let ready = interpreter(path, ready_args, Until::Output);
        let s = ready.run_many(plan.interpreter).await?;
        interpreters.push(Some(start_floor(report, ready_label, what, ready, &s)));
    }
    let node = interpreters.pop().flatten();
    let python = interpreters.pop().flatten();

    let fsync = fsync_samples(plan.fsync).await?;
    let fsync = report.floor(
        Row::new(
            Section::Floors,
            "write + fdatasync of 256 bytes (data dir's file system)",
            "p50",
            fsync.p50(),
            Unit::Secs,
        )
        .n(fsync.len()),
    );
    Ok(Floors {
        rtt,
        protocol,
        spawn,
        python,
        node,
        fsync,
    })
}

/// Starting the interpreter at `path` with `args`, with an environment like the one lamina
/// gives functions.
fn interpreter(path: &Path, args: &'static [&'static str], until: Until) -> StartProbe {
    let path = path.to_path_buf();
    StartProbe::new(until, move || {
        let mut c = std::process::Command::new(&path);
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC");
        c
    })
}

/// Where a process start is timed to.
#[derive(Debug, Clone, Copy)]
enum Until {
    /// The process exited.
    Exit,
    /// The first byte the process wrote to stdout.
    Output,
}

/// A process start to time: the command and when it counts as started.
#[derive(Clone)]
pub(crate) struct StartProbe {
    make: Arc<dyn Fn() -> std::process::Command + Send + Sync>,
    until: Until,
}

impl std::fmt::Debug for StartProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartProbe")
            .field("command", &(self.make)())
            .field("until", &self.until)
            .finish()
    }
}

impl StartProbe {
    fn new(until: Until, make: impl Fn() -> std::process::Command + Send + Sync + 'static) -> Self {
        StartProbe {
            make: Arc::new(make),
            until,
        }
    }

    /// Time `n` starts (after one unmeasured one), each after 2 ms with nothing running, as each
    /// cold start does (`cold::settle`): on a VM a start right after busy CPUs is faster than
    /// one after idle ones, and the floor must not get the faster kind.
    async fn run_many(&self, n: usize) -> Result<Samples> {
        let probe = self.clone();
        let times = tokio::task::spawn_blocking(move || {
            let mut times = Vec::with_capacity(n);
            for i in 0..=n {
                std::thread::sleep(crate::cold::QUIET);
                let elapsed = probe.time_start()?;
                if i > 0 {
                    times.push(elapsed);
                }
            }
            anyhow::Ok(times)
        })
        .await??;
        Ok(Samples::from_secs(times))
    }

    /// Time one start, in seconds (the caller lets the machine settle first).
    pub(crate) async fn once(&self) -> Result<f64> {
        let probe = self.clone();
        tokio::task::spawn_blocking(move || probe.time_start()).await?
    }

    fn time_start(&self) -> Result<f64> {
        use std::io::Read;
        let mut cmd = (self.make)();
        cmd.stdin(Stdio::null())
            .stdout(match self.until {
                Until::Exit => Stdio::null(),
                Until::Output => Stdio::piped(),
            })
            .stderr(Stdio::null());
        let t = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("running {cmd:?}"))?;
        if let Some(mut out) = child.stdout.take() {
            let mut byte = [0u8; 1];
            if out.read(&mut byte)? == 0 {
                bail!("{cmd:?} wrote nothing");
            }
        }
        let elapsed = t.elapsed();
        let status = child.wait()?;
        let elapsed = match self.until {
            Until::Exit => t.elapsed(),
            Until::Output => elapsed,
        };
        if !status.success() {
            bail!("{cmd:?} failed: {status}");
        }
        Ok(elapsed.as_secs_f64())
    }
}

async fn fsync_samples(n: usize) -> Result<Samples> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let dir = tempfile::Builder::new().prefix("lamina-bench-").tempdir()?;
        let mut f = std::fs::File::create(dir.path().join("fsync"))?;
        let record = [b'x'; 256];
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            f.write_all(&record)?;
            f.sync_data()?;
            times.push(t.elapsed().as_secs_f64());
        }
        Ok(Samples::from_secs(times))
    })
    .await?
}
