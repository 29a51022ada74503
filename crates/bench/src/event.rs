//! Async (`Event`) invokes. A Python function prints `time.time()` and its request id to its log
//! (which lamina writes on the host, so this works inside the namespace sandbox, where the
//! function cannot write to the host's files); the bench matches each line to the
//! `x-amzn-RequestId` of the `202` it got, so "202 → start" is the time from the client holding
//! the `202` to the handler running.
//!
//! - One at a time (each waits until the previous one ran): accept latency (the event is on
//!   disk before `202`, so the floor is one `fdatasync`) and 202 → start on a warm environment.
//! - A burst from cores × 4 clients to a Rust no-op of its own: `Event` invokes accepted per
//!   second when running them is cheap, and how fast they run (from the `END` lines of its
//!   logs).
//!   Also the accept latency under that load (each `202` still waits for its `fdatasync`;
//!   concurrent accepts share one, as the store commits them in groups).
//! - A wide burst from cores × 32 clients to the same no-op: how accepting scales with many
//!   concurrent clients (group commit at work).
//! - The same burst to the Python probe: accepted per second while Python environments start,
//!   202 → start while the queue drains, and how fast the burst runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;

use crate::floors::Floors;
use crate::http::{Conn, Response};
use crate::lamina::{event_request, FunctionSpec, Lamina};
use crate::report::{Report, Row, Section, Unit};
use crate::setup::Setup;
use crate::stats::Samples;
use crate::Plan;

const HANDLER: &str = r#"import time

def handler(event, context):
    print("STARTED %.6f %s" % (time.time(), context.aws_request_id), flush=True)
    return None
"#;

/// The Python probe: it writes down when it started.
const PROBE: &str = "bench-event-python";
/// A Rust no-op of its own, so that its logs hold only the burst's events.
const RUST: &str = "bench-event-rust";

/// One accepted event: its request id, when the `202` was in hand (wall clock) and how long
/// the request took.
struct Accepted {
    request_id: String,
    at: f64,
    latency: Duration,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn accepted(resp: &Response, sent: Instant) -> Result<Accepted> {
    let latency = sent.elapsed();
    let at = now();
    if resp.status != 202 {
        bail!(
            "Event invoke: expected 202, got {}: {}",
            resp.status,
            resp.body_text()
        );
    }
    let request_id = resp
        .header("x-amzn-requestid")
        .context("a 202 without x-amzn-RequestId")?
        .to_string();
    Ok(Accepted {
        request_id,
        at,
        latency,
    })
}

/// The function start time of each request id the probe logged so far.
fn started(lamina: &Lamina) -> HashMap<String, f64> {
    lamina
        .log_lines(PROBE)
        .iter()
        .filter_map(|l| {
            let (_, rest) = l.split_once("STARTED ")?;
            let (t, id) = rest.trim().split_once(' ')?;
            Some((id.to_string(), t.parse().ok()?))
        })
        .collect()
}

/// Wait until every id in `ids` has a line in the probe's log.
async fn wait_started(
    lamina: &Lamina,
    ids: &[&str],
    within: Duration,
) -> Result<HashMap<String, f64>> {
    let deadline = Instant::now() + within;
    loop {
        let seen = started(lamina);
        if ids.iter().all(|id| seen.contains_key(*id)) {
            return Ok(seen);
        }
        ensure!(
            Instant::now() < deadline,
            "{} of {} Event invocations did not run within {} s",
            ids.iter().filter(|id| !seen.contains_key(**id)).count(),
            ids.len(),
            within.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub(crate) async fn run(
    setup: &Setup,
    plan: &Plan,
    floors: &Floors,
    lamina: &Lamina,
    report: &mut Report,
) -> Result<()> {
    if floors.python.is_none() {
        report.note("async: not measured (its probe function is Python, and there is no python3.12 interpreter)");
        return Ok(());
    }
    let mut api = lamina.api().await?;
    let zip = crate::lamina::zip(&[("app.py", HANDLER.as_bytes(), 0o644)])?;
    api.create_active(&FunctionSpec {
        name: PROBE,
        runtime: "python3.12",
        handler: "app.handler",
        zip: &zip,
    })
    .await?;
    let rust_zip = crate::lamina::rust_noop_zip(&setup.rust_noop)?;
    api.create_active(&FunctionSpec {
        name: RUST,
        runtime: "provided.al2023",
        handler: "bootstrap",
        zip: &rust_zip,
    })
    .await?;
    let payload = json!({ "probe": true }).to_string();
    let probe = Arc::new(event_request(PROBE, payload.as_bytes()));
    let rtt1 = floors.rtt_at(1);
    let many = floors.rtt_at(plan.many);

    // One at a time. The first event is not measured (it starts the environment).
    let mut seq = Vec::with_capacity(plan.event_seq);
    for i in 0..=plan.event_seq {
        let t = Instant::now();
        let resp = api.conn.call(&probe).await?;
        let a = accepted(&resp, t)?;
        wait_started(lamina, &[&a.request_id], Duration::from_secs(30)).await?;
        if i > 0 {
            seq.push(a);
        }
    }
    let seen = started(lamina);
    let accept = Samples::from_durations(&seq.iter().map(|a| a.latency).collect::<Vec<_>>());
    let to_start = Samples::from_secs(seq.iter().map(|a| seen[&a.request_id] - a.at).collect());
    for (stat, v) in [("p50", accept.p50()), ("p99", accept.p99())] {
        report.add(
            Row::new(
                Section::Async,
                "one at a time: accepted (stored before 202)",
                stat,
                v,
                Unit::Secs,
            )
            .n(accept.len())
            .vs(&floors.fsync),
        );
    }
    for (stat, v, f) in [
        ("p50", to_start.p50(), &rtt1.p50),
        ("p99", to_start.p99(), &rtt1.p99),
    ] {
        report.add(
            Row::new(
                Section::Async,
                "one at a time: 202 -> python probe starts",
                stat,
                v,
                Unit::Secs,
            )
            .n(to_start.len())
            .vs(f),
        );
    }

    // A burst to the Rust no-op: how fast lamina accepts when running the events is cheap.
    let raw = Arc::new(event_request(RUST, b"{}"));
    let burst_start = now();
    let t = Instant::now();
    let all = burst(lamina.addr, raw, plan.many, plan.event_burst).await?;
    let wall = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ended = lamina.ended(RUST);
        if all.iter().all(|a| ended.contains(&a.request_id)) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "Event invocations of {RUST} did not all run within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = now() - burst_start;
    let label = format!(
        "burst of {} Events from {} clients, rust no-op",
        all.len(),
        plan.many
    );
    let latency = Samples::from_durations(&all.iter().map(|a| a.latency).collect::<Vec<_>>());
    for (stat, v) in [("p50", latency.p50()), ("p99", latency.p99())] {
        report.add(
            Row::new(
                Section::Async,
                format!("{label}: accept latency"),
                stat,
                v,
                Unit::Secs,
            )
            .n(latency.len())
            .vs(&floors.fsync),
        );
    }
    report.add(
        Row::new(
            Section::Async,
            format!("{label}: accepted"),
            "throughput",
            all.len() as f64 / wall.as_secs_f64(),
            Unit::PerSec,
        )
        .n(all.len())
        .vs(&many.rate),
    );
    report.add(
        Row::new(
            Section::Async,
            format!("{label}: ran (to last END line)"),
            "throughput",
            all.len() as f64 / drained.max(1e-9),
            Unit::PerSec,
        )
        .n(all.len())
        .vs(&many.rate),
    );

    // Many more clients: concurrent accepts share a commit.
    let wide = plan.many * 8;
    let raw = Arc::new(event_request(RUST, b"{}"));
    let t = Instant::now();
    let all = burst(lamina.addr, raw, wide, plan.event_burst).await?;
    let wall = t.elapsed();
    let label = format!(
        "burst of {} Events from {wide} clients, rust no-op",
        all.len()
    );
    report.add(
        Row::new(
            Section::Async,
            format!("{label}: accepted"),
            "throughput",
            all.len() as f64 / wall.as_secs_f64(),
            Unit::PerSec,
        )
        .n(all.len())
        .vs(&many.rate),
    );
    let latency = Samples::from_durations(&all.iter().map(|a| a.latency).collect::<Vec<_>>());
    for (stat, v) in [("p50", latency.p50()), ("p99", latency.p99())] {
        report.add(
            Row::new(
                Section::Async,
                format!("{label}: accept latency"),
                stat,
                v,
                Unit::Secs,
            )
            .n(latency.len())
            .vs(&floors.fsync),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ended = lamina.ended(RUST);
        if all.iter().all(|a| ended.contains(&a.request_id)) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "Event invocations of {RUST} did not all run within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The same burst to the Python probe: 202 -> start while the queue drains.
    let burst_start = now();
    let t = Instant::now();
    let all = burst(lamina.addr, probe, plan.many, plan.event_burst).await?;
    let wall = t.elapsed();
    let ids: Vec<&str> = all.iter().map(|a| a.request_id.as_str()).collect();
    let seen = wait_started(lamina, &ids, Duration::from_secs(300)).await?;
    let last_start = ids.iter().map(|id| seen[*id]).fold(0.0, f64::max);
    let to_start = Samples::from_secs(all.iter().map(|a| seen[&a.request_id] - a.at).collect());
    let label = format!(
        "burst of {} Events from {} clients, python probe",
        all.len(),
        plan.many
    );
    report.add(
        Row::new(
            Section::Async,
            format!("{label}: accepted"),
            "throughput",
            all.len() as f64 / wall.as_secs_f64(),
            Unit::PerSec,
        )
        .n(all.len())
        .vs(&many.rate),
    );
    report.add(
        Row::new(
            Section::Async,
            format!("{label}: ran (to last start)"),
            "throughput",
            all.len() as f64 / (last_start - burst_start).max(1e-9),
            Unit::PerSec,
        )
        .n(all.len())
        .vs(&many.rate),
    );
    for (stat, v, f) in [
        ("p50", to_start.p50(), &rtt1.p50),
        ("p99", to_start.p99(), &rtt1.p99),
    ] {
        report.add(
            Row::new(
                Section::Async,
                format!("{label}: 202 -> start"),
                stat,
                v,
                Unit::Secs,
            )
            .n(to_start.len())
            .vs(f),
        );
    }
    Ok(())
}

/// `clients` connections send `total` Event invokes back to back.
async fn burst(
    addr: SocketAddr,
    raw: Arc<Vec<u8>>,
    clients: usize,
    total: usize,
) -> Result<Vec<Accepted>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut conn = Conn::connect(addr).await?;
        let raw = raw.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let resp = conn.call(&raw).await?;
                out.push(accepted(&resp, t)?);
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}
