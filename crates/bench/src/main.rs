//! `lamina-bench`: how fast lamina is, next to how fast the machine is.
//!
//! One run builds lamina and the fixtures (`cargo build --release -p lamina -p lamina-fixtures`,
//! skipped with `--no-build`), starts its own `lamina serve` (temporary data directory,
//! ephemeral port), deploys its own no-op functions through the Lambda API (Rust
//! `provided.al2023` twice: built with the official `lambda_runtime` crate, and with a minimal
//! runtime client that leaves the platform's cost in plain view; Python `python3.12`; Node.js
//! `nodejs20.x`) and prints one table in which every figure sits beside a floor measured in the
//! same run, with the ratio to it:
//!
//! | module      | measures                                                  | floor                           |
//! |-------------|-----------------------------------------------------------|---------------------------------|
//! | [`floors`]  | the machine without lamina                                | —                               |
//! | [`warm`]    | sync invokes over keep-alive at concurrency 1 and cores×4; CPU per invoke | HTTP round trip, same client |
//! | [`cold`]    | invoke of a new environment, per runtime and isolation level | process spawn / bare interpreter |
//! | [`event`]   | `Event` accept latency and rate, 202 → function start     | fdatasync, HTTP round trip      |
//! | [`control`] | CreateFunction 1 MB / 40 MB, GetFunction, ListFunctions   | HTTP upload / round trip        |
//! | [`memory`]  | lamina's RSS idle and with N warm environments            | lamina idle                     |
//!
//! Every request goes through one minimal HTTP/1.1 client ([`http`]: raw `TcpStream`,
//! TCP_NODELAY, one write per request), the same one that measures the round-trip floor against
//! this binary's `floor-server` mode (a minimal hyper server). The spawn floor runs this binary's
//! `noop` mode. The bench asserts nothing about speed; it fails only when lamina misbehaves
//! (an unexpected status, a function error, an event that never runs).
//!
//! `--json` prints the same rows as JSON; `--quick` runs every group with fewer samples
//! (for CI, well under a minute).

mod cold;
mod control;
mod event;
mod floors;
mod http;
mod lamina;
mod memory;
mod procfs;
mod protocol;
mod report;
mod setup;
mod stats;
mod warm;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::lamina::{FunctionSpec, Lamina};
use crate::report::Report;
use crate::setup::Setup;

#[derive(Debug, Parser)]
#[command(
    name = "lamina-bench",
    about = "Benchmark lamina against floors measured on the same machine in the same run"
)]
struct Cli {
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Fewer samples in every group (CI smoke run, well under a minute).
    #[arg(long)]
    quick: bool,
    /// Do not run `cargo build --release -p lamina -p lamina-fixtures` first.
    #[arg(long)]
    no_build: bool,
    /// Where `lamina` and `rust-noop` are (default: the workspace's target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Measure only these groups (floors always run): `warm`, `cold`, `event`, `control`,
    /// `memory`. For working on one part; the full table needs every group.
    #[arg(long, value_delimiter = ',')]
    only: Vec<Group>,
    /// Measure only this isolation level (default: every level lamina offers).
    #[arg(long)]
    isolation: Option<String>,
    #[command(subcommand)]
    mode: Option<Mode>,
}

/// A group of measurements that `--only` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Group {
    Warm,
    Cold,
    Event,
    Control,
    Memory,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// (internal) The round-trip floor: a minimal HTTP server on an ephemeral port.
    #[command(hide = true)]
    FloorServer,
    /// (internal) The protocol floor: a minimal Lambda platform serving `runtimes` copies of
    /// `runtime` (see `protocol.rs`).
    #[command(hide = true)]
    FloorLambda {
        #[arg(long)]
        runtime: PathBuf,
        #[arg(long, default_value_t = 1)]
        runtimes: usize,
    },
    /// Invoke one function on a running lamina from `concurrency` keep-alive clients and print
    /// latency percentiles and throughput (for profiling lamina while it serves load).
    Load {
        /// lamina's API address, e.g. 127.0.0.1:9001.
        #[arg(long, default_value = "127.0.0.1:9001")]
        addr: std::net::SocketAddr,
        /// The function to invoke (it must exist and answer 200).
        #[arg(long)]
        function: String,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Invokes to measure (a tenth as many run first, unmeasured).
        #[arg(long, default_value_t = 10_000)]
        n: usize,
    },
}

/// How many samples each group takes.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    /// The groups to measure (all of them unless `--only` names some).
    pub(crate) only: Vec<Group>,
    /// Concurrency of the "many clients" runs: cores × 4.
    pub(crate) many: usize,
    pub(crate) warm_c1: usize,
    pub(crate) warm_many: usize,
    pub(crate) spawn: usize,
    pub(crate) interpreter: usize,
    pub(crate) fsync: usize,
    pub(crate) cold: usize,
    pub(crate) event_burst: usize,
    pub(crate) event_seq: usize,
    pub(crate) create_1mb: usize,
    pub(crate) create_40mb: usize,
    pub(crate) get: usize,
    pub(crate) functions: usize,
    pub(crate) list_passes: usize,
    pub(crate) environments: usize,
}

impl Plan {
    fn new(quick: bool, cores: usize, only: Vec<Group>) -> Plan {
        let many = cores * 4;
        if quick {
            Plan {
                quick,
                only: only.clone(),
                many,
                warm_c1: 1_000,
                warm_many: 2_000,
                spawn: 20,
                interpreter: 5,
                fsync: 20,
                cold: 5,
                event_burst: 200,
                event_seq: 20,
                create_1mb: 2,
                create_40mb: 1,
                get: 200,
                functions: 100,
                list_passes: 2,
                environments: 10,
            }
        } else {
            Plan {
                quick,
                only,
                many,
                warm_c1: 10_000,
                warm_many: 20_000,
                spawn: 200,
                interpreter: 30,
                fsync: 200,
                cold: 30,
                event_burst: 2_000,
                event_seq: 200,
                create_1mb: 10,
                create_40mb: 3,
                get: 1_000,
                functions: 1_000,
                list_passes: 5,
                environments: 100,
            }
        }
    }

    /// Whether `group` is measured in this run.
    pub(crate) fn wants(&self, group: Group) -> bool {
        self.only.is_empty() || self.only.contains(&group)
    }
}

/// The Rust no-op built with the official `lambda_runtime` crate (`rust-noop`).
pub(crate) const RUST_NOOP: &str = "bench-noop-rust";
/// The Rust no-op with a minimal runtime client (`rust-min`).
pub(crate) const RUST_MIN: &str = "bench-noop-rust-min";

/// A function deployed for the measurements.
#[derive(Debug, Clone)]
pub(crate) struct Deployed {
    /// As printed in the table, e.g. `python no-op (python3.12)`.
    pub(crate) label: String,
    pub(crate) name: String,
    /// The floor of its cold start: process spawn or bare interpreter start.
    pub(crate) cold_floor: floors::StartFloor,
}

fn main() -> Result<()> {
    // The spawn floor: exit before doing anything at all.
    if std::env::args_os().nth(1).is_some_and(|a| a == "noop") {
        return Ok(());
    }
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if matches!(cli.mode, Some(Mode::FloorLambda { .. })) {
        // As many workers as lamina runs with by default, on the same kind of scheduler
        // (single-threaded for one), to compare like with like.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let workers = cores.div_ceil(2);
        if workers == 1 {
            rt = tokio::runtime::Builder::new_current_thread();
        } else {
            rt.worker_threads(workers);
        }
    }
    let rt = rt.enable_all().build()?;
    match cli.mode {
        Some(Mode::FloorServer) => rt.block_on(http::floor_server()),
        Some(Mode::FloorLambda { runtime, runtimes }) => {
            rt.block_on(protocol::floor_lambda(runtime, runtimes))
        }
        Some(Mode::Load {
            addr,
            function,
            concurrency,
            n,
        }) => rt.block_on(load(addr, &function, concurrency, n)),
        None => rt.block_on(run(cli)),
    }
}

async fn run(cli: Cli) -> Result<()> {
    progress("start");
    let mut setup = setup::prepare(cli.no_build, cli.bin_dir.clone())?;
    if let Some(level) = &cli.isolation {
        anyhow::ensure!(
            setup.isolation.contains(level),
            "lamina doctor does not offer isolation level {level:?} here (it offers {:?})",
            setup.isolation
        );
        setup.isolation = vec![level.clone()];
    }
    let started = Instant::now();
    let (busy_before, own_before) = (procfs::system_busy_ticks(), procfs::own_tree_ticks());
    let plan = Plan::new(cli.quick, setup.machine.cores, cli.only.clone());
    let mode = if plan.quick { "quick" } else { "full" };
    let mut report = Report::default();
    if plan.quick {
        report.note(format!(
            "quick run: fewer samples everywhere; {} functions for ListFunctions instead of 1000, \
             {} warm environments for memory instead of 100",
            plan.functions, plan.environments
        ));
    }

    progress("floors");
    let floor_server = floors::FloorServer::start(&setup.bench).await?;
    let fl = floors::measure(&setup, &plan, &floor_server, &mut report).await?;

    // Every level's lamina stays up until the cold starts, which are measured on all of them
    // at once, interleaved (see `cold`).
    let mut laminas: Vec<(Lamina, Vec<Deployed>)> = Vec::new();
    let result = measure_levels(&setup, &plan, &fl, &floor_server, &mut laminas, &mut report).await;
    if result.is_err() {
        for (lamina, _) in &mut laminas {
            lamina.post_mortem();
        }
    }
    for (lamina, _) in &mut laminas {
        lamina.stop().await;
    }
    result?;

    if plan.wants(Group::Memory) {
        progress("memory");
        memory::run(&setup, &plan, &mut report).await?;
    }
    floor_server.stop().await;

    // Whatever else ran on the machine meanwhile skews every figure: say how much there was.
    let busy = procfs::system_busy_ticks().saturating_sub(busy_before);
    let own = procfs::own_tree_ticks().saturating_sub(own_before);
    // Tick rounding can make this slightly negative on an idle machine.
    let others = ((busy as f64 - own as f64) / 100.0 / started.elapsed().as_secs_f64()).max(0.0);
    report.note(format!(
        "other processes on the machine used {others:.2} of its {} cores on average during \
         the measurements (busy CPU time from /proc/stat minus the bench's own tree)",
        setup.machine.cores
    ));

    report.note(format!(
        "measuring took {:.0} s (after building and lamina doctor)",
        started.elapsed().as_secs_f64()
    ));
    if cli.json {
        let out = report.to_json(setup.header_json(mode));
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}\n{}", setup.header_text(mode), report.to_table());
    }
    Ok(())
}

/// The `load` mode: closed-loop sync invokes of `function` on a running lamina.
async fn load(
    addr: std::net::SocketAddr,
    function: &str,
    concurrency: usize,
    n: usize,
) -> Result<()> {
    let raw = std::sync::Arc::new(lamina::invoke_request(function, b"{}"));
    let warm_up = (n / 10).max(concurrency);
    http::closed_loop(addr, raw.clone(), concurrency, warm_up, lamina::invoke_ok).await?;
    let result = http::closed_loop(addr, raw, concurrency, n, lamina::invoke_ok).await?;
    let mut lat = result.latencies.clone();
    lat.sort();
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "{n} invokes of {function} at c={concurrency}: p50 {:?} p90 {:?} p99 {:?} max {:?}, {:.0}/s",
        at(0.5),
        at(0.9),
        at(0.99),
        lat[lat.len() - 1],
        result.throughput()
    );
    Ok(())
}

/// Every group but memory, on a lamina per isolation level (pushed onto `laminas`; the caller
/// stops any still running). Cold starts come first, on all the laminas at once while they are
/// fresh (see `cold`); then each lamina in turn gets its warm invokes (and the first one the
/// async and control-plane groups) and is stopped, so that none idles beside the next one's
/// measurements with environments it would reap meanwhile.
async fn measure_levels(
    setup: &Setup,
    plan: &Plan,
    fl: &floors::Floors,
    floor_server: &floors::FloorServer,
    laminas: &mut Vec<(Lamina, Vec<Deployed>)>,
    report: &mut Report,
) -> Result<()> {
    for (i, level) in setup.isolation.iter().enumerate() {
        let lamina = Lamina::start(&setup.lamina, level).await?;
        laminas.push((lamina, Vec::new()));
        progress(&format!("deploying the no-op functions ({level})"));
        // Deployment figures are reported for the first lamina only.
        let mut unreported = Report::default();
        let to = if i == 0 {
            &mut *report
        } else {
            &mut unreported
        };
        laminas[i].1 = deploy(setup, fl, &laminas[i].0, to).await?;
    }
    if plan.wants(Group::Cold) {
        progress(&format!("cold starts ({})", setup.isolation.join(", ")));
        let levels: Vec<cold::Level<'_>> = laminas
            .iter()
            .zip(&setup.isolation)
            .map(|((lamina, deployed), isolation)| cold::Level {
                lamina,
                deployed,
                isolation,
            })
            .collect();
        cold::run(plan, &levels, report).await?;
    }
    for (i, level) in setup.isolation.iter().enumerate() {
        let (lamina, deployed) = &laminas[i];
        if plan.wants(Group::Warm) {
            progress(&format!("warm invokes ({level})"));
            warm::run(plan, fl, lamina, deployed, level, report).await?;
        }
        if i == 0 {
            measure_first(setup, plan, fl, floor_server, lamina, report).await?;
        }
        laminas[i].0.stop().await;
    }
    Ok(())
}

/// The groups measured on the first level's lamina only: async invokes and the control plane.
async fn measure_first(
    setup: &Setup,
    plan: &Plan,
    fl: &floors::Floors,
    floor_server: &floors::FloorServer,
    lamina: &Lamina,
    report: &mut Report,
) -> Result<()> {
    if plan.wants(Group::Event) {
        progress("async invokes");
        event::run(setup, plan, fl, lamina, report).await?;
    }
    if !plan.wants(Group::Control) {
        return Ok(());
    }
    progress("control plane");
    report.add(
        report::Row::new(
            report::Section::Control,
            "lamina serve: spawn to \"listening\" line",
            "once",
            lamina.start_time.as_secs_f64(),
            report::Unit::Secs,
        )
        .n(1)
        .vs(&fl.spawn.p50),
    );
    control::run(plan, fl, floor_server, lamina, report).await
}

/// Create the no-ops (those whose interpreter exists) and wait until they are Active.
async fn deploy(
    setup: &Setup,
    fl: &floors::Floors,
    lamina: &Lamina,
    report: &mut Report,
) -> Result<Vec<Deployed>> {
    let mut api = lamina.api().await?;
    let rust_zip = lamina::rust_noop_zip(&setup.rust_noop)?;
    let min_zip = lamina::rust_noop_zip(&setup.rust_min)?;
    let python_zip = lamina::zip(&[("app.py", lamina::PYTHON_NOOP.as_bytes(), 0o644)])?;
    let node_zip = lamina::zip(&[("index.js", lamina::NODE_NOOP.as_bytes(), 0o644)])?;
    let mut out = Vec::new();
    // (name, label, runtime, handler, zip, cold-start floor)
    let candidates = [
        (
            RUST_NOOP,
            "rust no-op, lambda_runtime (provided.al2023)",
            "provided.al2023",
            "bootstrap",
            &rust_zip,
            Some(&fl.spawn),
        ),
        (
            RUST_MIN,
            "rust no-op, minimal client (provided.al2023)",
            "provided.al2023",
            "bootstrap",
            &min_zip,
            Some(&fl.spawn),
        ),
        (
            "bench-noop-python",
            "python no-op (python3.12)",
            "python3.12",
            "app.handler",
            &python_zip,
            fl.python.as_ref(),
        ),
        (
            "bench-noop-node",
            "node no-op (nodejs20.x)",
            "nodejs20.x",
            "index.handler",
            &node_zip,
            fl.node.as_ref(),
        ),
    ];
    for (name, label, runtime, handler, zip, floor) in candidates {
        let Some(floor) = floor else {
            report.note(format!(
                "{runtime}: no interpreter on this host (lamina doctor); not measured"
            ));
            continue;
        };
        api.create_active(&FunctionSpec {
            name,
            runtime,
            handler,
            zip,
        })
        .await?;
        out.push(Deployed {
            label: label.to_string(),
            name: name.to_string(),
            cold_floor: floor.clone(),
        });
    }
    Ok(out)
}

/// A progress line on stderr, with the time since the run started.
pub(crate) fn progress(what: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("lamina-bench [{t:6.1} s] {what}");
}
