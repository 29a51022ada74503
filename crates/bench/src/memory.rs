//! Memory, on a lamina of its own (so nothing from the other groups is resident): lamina's RSS
//! idle (one function created, no environment), then with N warm idle environments of the Rust
//! no-op (N concurrent invokes that each sleep 1 s, so each needs an environment of its own),
//! and from the two lamina's own cost per environment. The environments' own memory is reported
//! apart, per environment (its runtime process and, in a namespace sandbox, its init): RSS
//! (which counts shared pages in every process) and PSS (which splits them); the sandbox's helper
//! and its pre-started environments, which belong to no function yet, are a row of their own.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::http::closed_loop;
use crate::lamina::{invoke_ok, invoke_request, FunctionSpec, Lamina};
use crate::procfs;
use crate::report::{Report, Row, Section, Unit};
use crate::setup::Setup;
use crate::Plan;

pub(crate) async fn run(setup: &Setup, plan: &Plan, report: &mut Report) -> Result<()> {
    let mut lamina = Lamina::start(&setup.lamina, &setup.isolation[0]).await?;
    let result = measure(setup, plan, &lamina, report).await;
    if result.is_err() {
        lamina.post_mortem();
    }
    lamina.stop().await;
    result
}

async fn measure(setup: &Setup, plan: &Plan, lamina: &Lamina, report: &mut Report) -> Result<()> {
    let n = plan.environments;
    let zip = crate::lamina::rust_noop_zip(&setup.rust_noop)?;
    let name = "bench-memory-rust";
    lamina
        .api()
        .await?
        .create_active(&FunctionSpec {
            name,
            runtime: "provided.al2023",
            handler: "bootstrap",
            zip: &zip,
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = procfs::rss(lamina.pid).context("lamina's VmRSS")?;

    let raw = Arc::new(invoke_request(name, br#"{"sleep_ms": 1000}"#));
    closed_loop(lamina.addr, raw, n, n, invoke_ok).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_envs = procfs::rss(lamina.pid).context("lamina's VmRSS")?;
    let tree: Vec<u32> = procfs::descendants(lamina.pid)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let env = environments(lamina.pid, &tree);
    ensure!(
        !env.runtimes.is_empty(),
        "no environment is left after {n} invokes"
    );
    let k = env.runtimes.len();
    let sum = |pids: &[u32], f: fn(u32) -> Option<u64>| -> u64 {
        pids.iter().filter_map(|p| f(*p)).sum()
    };
    let env_rss = sum(&env.processes, procfs::rss);
    let env_pss = sum(&env.processes, procfs::pss);

    let idle_floor = report.floor(Row::new(
        Section::Memory,
        "lamina RSS, idle (one function, no environment)",
        "VmRSS",
        idle as f64,
        Unit::Bytes,
    ));
    report.add(
        Row::new(
            Section::Memory,
            format!("lamina RSS with {k} warm idle environments (rust no-op)"),
            "VmRSS",
            with_envs as f64,
            Unit::Bytes,
        )
        .n(k)
        .vs(&idle_floor),
    );
    report.add(
        Row::new(
            Section::Memory,
            "lamina's own memory per environment: (with - idle) / N",
            "VmRSS",
            (with_envs as f64 - idle as f64) / k as f64,
            Unit::Bytes,
        )
        .n(k),
    );
    report.add(
        Row::new(
            Section::Memory,
            "one environment's own processes (rust no-op), mean",
            "VmRSS",
            env_rss as f64 / k as f64,
            Unit::Bytes,
        )
        .n(k),
    );
    report.add(
        Row::new(
            Section::Memory,
            "one environment's own processes (rust no-op), mean",
            "PSS",
            env_pss as f64 / k as f64,
            Unit::Bytes,
        )
        .n(k),
    );
    if !env.platform.is_empty() {
        report.add(Row::new(
            Section::Memory,
            format!(
                "sandbox helper and pre-started environments ({} processes)",
                env.platform.len()
            ),
            "PSS",
            sum(&env.platform, procfs::pss) as f64,
            Unit::Bytes,
        ));
    }
    if k != n {
        report.note(format!(
            "memory: {n} concurrent invokes left {k} environments (expected {n})"
        ));
    }
    Ok(())
}

/// lamina's processes, sorted by what they are.
struct Environments {
    /// The functions' runtime processes (`bootstrap`): one per environment.
    runtimes: Vec<u32>,
    /// Every process of those environments: the runtimes and, in a namespace sandbox, the
    /// init each runtime runs under.
    processes: Vec<u32>,
    /// The rest: the sandbox's helper and its pre-started environments, which belong to no
    /// function yet.
    platform: Vec<u32>,
}

fn environments(lamina: u32, tree: &[u32]) -> Environments {
    let runtimes: Vec<u32> = tree
        .iter()
        .copied()
        .filter(|p| procfs::comm(*p).as_deref() == Some("bootstrap"))
        .collect();
    let mut processes = runtimes.clone();
    for r in &runtimes {
        if let Some(init) = procfs::parent(*r).filter(|p| *p != lamina && tree.contains(p)) {
            processes.push(init);
        }
    }
    let platform = tree
        .iter()
        .copied()
        .filter(|p| !processes.contains(p))
        .collect();
    Environments {
        runtimes,
        processes,
        platform,
    }
}
