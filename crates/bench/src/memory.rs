//! Memory, on a lamina of its own (so nothing from the other groups is resident): lamina's RSS
//! idle (one function created, no environment), then with N warm idle environments of the Rust
//! no-op (N concurrent invokes that each sleep 1 s, so each needs an environment of its own),
//! and from the two lamina's own cost per environment. The environments' own memory is reported
//! apart: RSS (which counts shared pages in every process) and PSS (which splits them).

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
    let envs = procfs::descendants(lamina.pid);
    ensure!(!envs.is_empty(), "no environment is left after {n} invokes");
    let k = envs.len();
    let env_rss: u64 = envs.iter().filter_map(|(p, _)| procfs::rss(*p)).sum();
    let env_pss: u64 = envs.iter().filter_map(|(p, _)| procfs::pss(*p)).sum();

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
    if k != n {
        report.note(format!(
            "memory: {n} concurrent invokes left {k} environment processes (expected {n})"
        ));
    }
    Ok(())
}
