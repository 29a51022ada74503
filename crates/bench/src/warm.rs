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
    report.note(
        "warm rows: \"overhead\" = warm invoke latency - HTTP round trip at the same concurrency \
         and percentile (lamina's own cost); throughput ratio = invokes/s / round trips/s; \
         cpu/req = CPU time (schedstat) lamina's process and its environments \
         used per invoke, next to the minimal server's per request",
    );
    Ok(())
}
