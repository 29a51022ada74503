//! Cold starts: each sample forces a new execution environment (UpdateFunctionConfiguration
//! with a new `Description`, then GetFunctionConfiguration until `LastUpdateStatus` is
//! `Successful`) and times only the Invoke that follows, from request to response. Compared
//! with starting a small binary (Rust) or the bare interpreter (Python, Node.js).

use std::time::Instant;

use anyhow::Result;

use crate::lamina::{invoke_ok, invoke_request, Lamina};
use crate::report::{Report, Row, Section, Unit};
use crate::stats::Samples;
use crate::{Deployed, Plan};

pub(crate) async fn run(
    plan: &Plan,
    lamina: &Lamina,
    deployed: &[Deployed],
    isolation: &str,
    report: &mut Report,
) -> Result<Vec<(String, f64)>> {
    let mut p50s = Vec::new();
    for d in deployed {
        let mut api = lamina.api().await?;
        let raw = invoke_request(&d.name, b"{}");
        let mut times = Vec::with_capacity(plan.cold);
        // Round 0 is not measured: it also stops the warm environments of the old revision.
        for i in 0..=plan.cold {
            api.touch(&d.name, &format!("cold start {isolation} {i}"))
                .await?;
            api.wait_state(&d.name, "LastUpdateStatus", "Successful")
                .await?;
            let t = Instant::now();
            let resp = api.conn.call(&raw).await?;
            let elapsed = t.elapsed();
            invoke_ok(&resp)?;
            if i > 0 {
                times.push(elapsed.as_secs_f64());
            }
        }
        let s = Samples::from_secs(times);
        p50s.push((d.label.clone(), s.p50()));
        for (stat, value, floor) in [
            ("p50", s.p50(), &d.cold_floor.p50),
            ("p99", s.p99(), &d.cold_floor.p99),
        ] {
            report.add(
                Row::new(Section::Cold, &d.label, stat, value, Unit::Secs)
                    .n(s.len())
                    .vs(floor)
                    .iso(isolation),
            );
        }
    }
    Ok(p50s)
}

/// The sandbox's own cost: the cold-start p50 at the `namespace` level minus the one at the
/// `process` level, per runtime, both measured in this run.
pub(crate) fn sandbox_cost(
    namespace: &[(String, f64)],
    process: &[(String, f64)],
    report: &mut Report,
) {
    for (label, ns) in namespace {
        if let Some((_, plain)) = process.iter().find(|(l, _)| l == label) {
            let floor = crate::report::Floor {
                id: format!("cold p50 {label} (process)"),
                value: *plain,
            };
            report.add(
                Row::new(
                    Section::Cold,
                    format!("{label}: namespace sandbox cost"),
                    "p50 diff",
                    ns - plain,
                    Unit::Secs,
                )
                .vs(&floor)
                .iso("namespace"),
            );
        }
    }
}
