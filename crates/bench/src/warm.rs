//! Warm invokes: synchronous Invoke of each no-op through the Lambda API over keep-alive
//! connections (one per concurrent client), at concurrency 1 and at cores × 4, next to the HTTP
//! round trip to the minimal server at the same concurrency. The "overhead" column of a latency
//! row is lamina's own cost: warm latency − round-trip floor.

use std::sync::Arc;

use anyhow::Result;

use crate::floors::{load_rows, Floors};
use crate::http::closed_loop;
use crate::lamina::{invoke_ok, invoke_request, Lamina};
use crate::procfs;
use crate::report::{Report, Row, Section, Unit};
use crate::{Deployed, Plan};

pub(crate) async fn run(
    plan: &Plan,
    floors: &Floors,
    lamina: &Lamina,
    deployed: &[Deployed],
    isolation: &str,
    report: &mut Report,
) -> Result<()> {
    for d in deployed {
        let raw = Arc::new(invoke_request(&d.name, b"{}"));
        for (concurrency, n) in [(1, plan.warm_c1), (plan.many, plan.warm_many)] {
            // Unmeasured first: every client has an environment of its own afterwards, and
            // code and caches are warm.
            let warm_up = (20 * concurrency).max(n / 10);
            closed_loop(lamina.addr, raw.clone(), concurrency, warm_up, invoke_ok).await?;
            let (lamina_before, envs_before) = procfs::tree_cpu_secs(lamina.pid);
            let result = closed_loop(lamina.addr, raw.clone(), concurrency, n, invoke_ok).await?;
            let (lamina_after, envs_after) = procfs::tree_cpu_secs(lamina.pid);
            let subject = format!("{}, c={concurrency}", d.label);
            let floor = floors.rtt_at(concurrency);
            load_rows(
                report,
                Section::Warm,
                &subject,
                &result,
                Some(floor),
                Some(isolation),
            );
            // A Rust no-op against the same binary behind the protocol floor: what lamina adds
            // to the Lambda protocol itself.
            let protocol = floors
                .protocol
                .iter()
                .find(|(name, f)| *name == d.name && f.concurrency == concurrency);
            if let Some((_, pf)) = protocol {
                compare_with_protocol(
                    report,
                    &subject,
                    &result,
                    pf,
                    isolation,
                    n,
                    [lamina_after - lamina_before, envs_after - envs_before],
                );
            }
            for (whose, cpu) in [
                ("lamina", lamina_after - lamina_before),
                ("environments", envs_after - envs_before),
            ] {
                report.add(
                    Row::new(
                        Section::Warm,
                        &subject,
                        format!("cpu/req {whose}"),
                        cpu / n as f64,
                        Unit::Secs,
                    )
                    .n(n)
                    .vs(&floor.cpu)
                    .iso(isolation),
                );
            }
        }
    }
    if !floors.protocol.is_empty() {
        report.note(
            "warm rows \"vs protocol floor\": the same Rust no-op binary behind a minimal Lambda \
             platform in the bench (an invoke endpoint handing each request to a waiting \
             /next, nothing else, as many worker threads as lamina); \"overhead\" there is what \
             lamina adds to the Lambda protocol and the function's runtime client",
        );
    }
    report.note(
        "warm rows: \"overhead\" = warm invoke latency - HTTP round trip at the same concurrency \
         and percentile (lamina's own cost); throughput ratio = invokes/s / round trips/s; \
         cpu/req = CPU time (schedstat) lamina's process and its environments \
         used per invoke, next to the minimal server's per request",
    );
    Ok(())
}

/// Rows of the Rust no-op compared with the protocol floor at the same concurrency: p50, p99,
/// throughput, and CPU per invoke of the platform and of the runtimes (`cpu` = lamina's and
/// the environments' CPU seconds over `n` invokes).
fn compare_with_protocol(
    report: &mut Report,
    subject: &str,
    result: &crate::http::LoadResult,
    pf: &crate::floors::LoadFloors,
    isolation: &str,
    n: usize,
    cpu: [f64; 2],
) {
    let s = crate::stats::Samples::from_durations(&result.latencies);
    let subject = format!("{subject}, vs protocol floor");
    let rows = [
        ("p50", s.p50(), Unit::Secs, &pf.p50),
        ("p99", s.p99(), Unit::Secs, &pf.p99),
        ("throughput", result.throughput(), Unit::PerSec, &pf.rate),
        ("cpu/req lamina", cpu[0] / n as f64, Unit::Secs, &pf.cpu),
    ];
    for (stat, value, unit, floor) in rows {
        report.add(
            Row::new(Section::Warm, &subject, stat, value, unit)
                .n(n)
                .vs(floor)
                .iso(isolation),
        );
    }
    if let Some(floor) = &pf.cpu_runtimes {
        report.add(
            Row::new(
                Section::Warm,
                &subject,
                "cpu/req environments",
                cpu[1] / n as f64,
                Unit::Secs,
            )
            .n(n)
            .vs(floor)
            .iso(isolation),
        );
    }
}
