//! Cold starts: each sample forces a new execution environment (UpdateFunctionConfiguration
//! with a new `Description`, then GetFunctionConfiguration until `LastUpdateStatus` is
//! `Successful`) and times only the Invoke that follows, from request to response. Compared
//! with starting a small binary (Rust) or the bare interpreter (Python, Node.js): with the
//! floor rows measured before, and with that floor started once more in each round (after the
//! same wait for quiet), so that drift over the run does not fall on one side only.
//!
//! With more than one isolation level, every level's lamina runs at once and the samples are
//! interleaved: round `i` starts the function once on each level, one after the other. The
//! machine's drift (other tenants, frequency) then falls on every level alike, and the
//! sandbox's own cost is also given as the median of each round's difference. Before each
//! timed invoke the bench waits until no lamina's process tree is using the CPU (see
//! [`settle`]), so that one start does not pay for the work another left in the background
//! (tearing down an old environment, pre-starting the next ones); the rounds alternate the
//! order of the levels.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::lamina::{invoke_ok, invoke_request, Lamina};
use crate::procfs;
use crate::report::{Floor, Report, Row, Section, Unit};
use crate::stats::Samples;
use crate::{Deployed, Plan};

/// One lamina to measure cold starts on: its isolation level and its deployed functions.
pub(crate) struct Level<'a> {
    pub(crate) lamina: &'a Lamina,
    pub(crate) deployed: &'a [Deployed],
    pub(crate) isolation: &'a str,
}

pub(crate) async fn run(plan: &Plan, levels: &[Level<'_>], report: &mut Report) -> Result<()> {
    let Some(first) = levels.first() else {
        return Ok(());
    };
    let mut apis = Vec::with_capacity(levels.len());
    for level in levels {
        apis.push(level.lamina.api().await?);
    }
    let mut unsettled = 0;
    for (r, d) in first.deployed.iter().enumerate() {
        // times[level][round]
        let mut times = vec![Vec::with_capacity(plan.cold); levels.len()];
        // The floor (bare interpreter, or a small binary) started once in each round too.
        let mut floor_times = Vec::with_capacity(plan.cold);
        // Round 0 is not measured: it also stops the warm environments of the old revision.
        for i in 0..=plan.cold {
            let order: Vec<usize> = if i % 2 == 0 {
                (0..levels.len()).collect()
            } else {
                (0..levels.len()).rev().collect()
            };
            for l in order {
                let level = &levels[l];
                let name = &level.deployed[r].name;
                let api = &mut apis[l];
                api.touch(name, &format!("cold start {} {i}", level.isolation))
                    .await?;
                api.wait_state(name, "LastUpdateStatus", "Successful")
                    .await?;
                let raw = invoke_request(name, b"{}");
                if !settle(levels).await {
                    unsettled += 1;
                }
                let t = Instant::now();
                let resp = api.conn.call(&raw).await?;
                let elapsed = t.elapsed();
                invoke_ok(&resp)?;
                if i > 0 {
                    times[l].push(elapsed.as_secs_f64());
                }
            }
            if i > 0 {
                if !settle(levels).await {
                    unsettled += 1;
                }
                floor_times.push(d.cold_floor.probe.once().await?);
            }
        }
        let round_floor = Samples::from_secs(floor_times);
        let round_floor = Floor {
            id: format!("{}, same rounds", d.cold_floor.what),
            value: round_floor.p50(),
        };
        for (level, samples) in levels.iter().zip(&times) {
            let s = Samples::from_secs(samples.clone());
            for (stat, value, floor) in [
                ("p50", s.p50(), &d.cold_floor.p50),
                ("p99", s.p99(), &d.cold_floor.p99),
            ] {
                report.add(
                    Row::new(Section::Cold, &d.label, stat, value, Unit::Secs)
                        .n(s.len())
                        .vs(floor)
                        .iso(level.isolation),
                );
            }
            // The same p50 against the floor's starts in these rounds: the floor rows at the top
            // were measured a minute or more earlier, and a VM's start times drift.
            report.add(
                Row::new(
                    Section::Cold,
                    format!("{}: vs floor started in the same rounds", d.label),
                    "p50",
                    s.p50(),
                    Unit::Secs,
                )
                .n(s.len())
                .vs(&round_floor)
                .iso(level.isolation),
            );
        }
        let find = |iso: &str| levels.iter().position(|l| l.isolation == iso);
        if let (Some(ns), Some(plain)) = (find("namespace"), find("process")) {
            sandbox_cost(&d.label, &times[ns], &times[plain], report);
        }
    }
    if unsettled > 0 {
        report.note(format!(
            "cold: {unsettled} starts began with a lamina still busy after 2 s of waiting for it to be quiet"
        ));
    }
    Ok(())
}

/// How long the laminas' process trees must stay quiet before a timed cold start.
pub(crate) const QUIET: Duration = Duration::from_millis(2);

/// Wait until the process trees of every lamina (lamina, its sandbox helper, pre-started and
/// warm environments) used less than 100 µs of CPU in [`QUIET`] with no process starting or
/// exiting (`true`), or 2 s have passed (`false`).
async fn settle(levels: &[Level<'_>]) -> bool {
    let snapshot = || {
        let mut cpu = 0.0;
        let mut pids = Vec::new();
        for level in levels {
            // One walk of /proc per lamina: its processes, then their CPU time.
            let tree = procfs::descendants(level.lamina.pid);
            cpu += std::iter::once(level.lamina.pid)
                .chain(tree.iter().map(|(p, _)| *p))
                .filter_map(procfs::cpu_secs)
                .sum::<f64>();
            pids.extend(tree);
        }
        pids.sort_unstable();
        (cpu, pids)
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut before = snapshot();
    while Instant::now() < deadline {
        tokio::time::sleep(QUIET).await;
        let now = snapshot();
        if (now.0 - before.0).abs() < 100e-6 && now.1 == before.1 {
            return true;
        }
        before = now;
    }
    false
}

/// The sandbox's own cost: the `namespace` level's cold starts against the `process` level's,
/// measured in the same rounds: p50 minus p50, and the median of the rounds' differences.
fn sandbox_cost(label: &str, namespace: &[f64], process: &[f64], report: &mut Report) {
    let ns = Samples::from_secs(namespace.to_vec());
    let plain = Samples::from_secs(process.to_vec());
    let floor = Floor {
        id: format!("cold p50 {label} (process)"),
        value: plain.p50(),
    };
    let paired = Samples::from_secs(namespace.iter().zip(process).map(|(a, b)| a - b).collect());
    for (stat, value) in [
        ("p50 diff", ns.p50() - plain.p50()),
        ("paired p50", paired.p50()),
    ] {
        report.add(
            Row::new(
                Section::Cold,
                format!("{label}: namespace sandbox cost"),
                stat,
                value,
                Unit::Secs,
            )
            .n(paired.len())
            .vs(&floor)
            .iso("namespace"),
        );
    }
}
