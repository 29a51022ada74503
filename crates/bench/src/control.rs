//! Control plane: CreateFunction of a 1 MB and a 40 MB zip of incompressible content (to the
//! `201`, and on to `Active`), next to uploading the same request to the minimal server;
//! GetFunction; creating many small functions from cores × 4 clients; ListFunctions pages over
//! all of them. Latencies are compared with the HTTP round trip.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::floors::{FloorServer, Floors};
use crate::http::{closed_loop, request, Conn, Response};
use crate::lamina::{FunctionSpec, Lamina, PYTHON_NOOP};
use crate::report::{Report, Row, Section, Unit};
use crate::stats::Samples;
use crate::Plan;

fn ok_200(resp: &Response) -> Result<()> {
    if resp.status != 200 {
        bail!("expected 200, got {}: {}", resp.status, resp.body_text());
    }
    Ok(())
}

pub(crate) async fn run(
    plan: &Plan,
    floors: &Floors,
    floor_server: &FloorServer,
    lamina: &Lamina,
    report: &mut Report,
) -> Result<()> {
    let rtt1 = floors.rtt_at(1);
    for (mb, n) in [(1, plan.create_1mb), (40, plan.create_40mb)] {
        create_big(mb, n, floor_server, lamina, report).await?;
    }

    // GetFunction of one of the no-ops.
    let raw = Arc::new(request(
        "GET",
        &format!("/2015-03-31/functions/{}", crate::RUST_NOOP),
        &[],
        b"",
    ));
    closed_loop(lamina.addr, raw.clone(), 1, plan.get / 10, ok_200).await?;
    let got = closed_loop(lamina.addr, raw, 1, plan.get, ok_200).await?;
    let s = Samples::from_durations(&got.latencies);
    for (stat, v, f) in [("p50", s.p50(), &rtt1.p50), ("p99", s.p99(), &rtt1.p99)] {
        report.add(
            Row::new(Section::Control, "GetFunction", stat, v, Unit::Secs)
                .n(s.len())
                .vs(f),
        );
    }

    // Many small functions, created from cores × 4 clients.
    let zip = crate::lamina::zip(&[("app.py", PYTHON_NOOP.as_bytes(), 0o644)])?;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..plan.functions)
            .map(|i| {
                FunctionSpec {
                    name: &format!("bench-list-{i:05}"),
                    runtime: "python3.12",
                    handler: "app.handler",
                    zip: &zip,
                }
                .create_request()
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..plan.many {
        let mut conn = Conn::connect(lamina.addr).await?;
        let (bodies, next) = (bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return anyhow::Ok(());
                };
                let resp = conn.call(body).await?;
                if resp.status != 201 {
                    bail!(
                        "CreateFunction: expected 201, got {}: {}",
                        resp.status,
                        resp.body_text()
                    );
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let wall = t.elapsed();
    report.add(
        Row::new(
            Section::Control,
            format!("CreateFunction, small zip, {} clients", plan.many),
            "throughput",
            plan.functions as f64 / wall.as_secs_f64(),
            Unit::PerSec,
        )
        .n(plan.functions)
        .vs(&floors.rtt_at(plan.many).rate),
    );

    // ListFunctions, every page, several passes.
    let mut api = lamina.api().await?;
    let mut pages = Vec::new();
    let mut passes = Vec::new();
    let (mut listed, mut pages_per_pass) = (0, 0);
    // Pass 0 warms caches and is not measured.
    for pass in 0..=plan.list_passes {
        let mut marker: Option<String> = None;
        let mut page_times = Vec::new();
        listed = 0;
        let t = Instant::now();
        loop {
            let path = match &marker {
                Some(m) => format!("/2015-03-31/functions/?Marker={m}"),
                None => "/2015-03-31/functions/".to_string(),
            };
            let raw = request("GET", &path, &[], b"");
            let p = Instant::now();
            let resp = api.expect(&raw, 200, "ListFunctions").await?;
            page_times.push(p.elapsed());
            let page = resp.json()?;
            listed += page["Functions"].as_array().map_or(0, Vec::len);
            match page["NextMarker"].as_str() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        if pass > 0 {
            passes.push(t.elapsed().as_secs_f64());
            pages_per_pass = page_times.len();
            pages.extend(page_times);
        }
    }
    if listed < plan.functions {
        bail!(
            "ListFunctions listed {listed} functions, {} were created",
            plan.functions
        );
    }
    let pages = Samples::from_durations(&pages);
    for (stat, v, f) in [
        ("p50", pages.p50(), &rtt1.p50),
        ("p99", pages.p99(), &rtt1.p99),
    ] {
        report.add(
            Row::new(
                Section::Control,
                format!("ListFunctions, one page of {pages_per_pass} for {listed} functions"),
                stat,
                v,
                Unit::Secs,
            )
            .n(pages.len())
            .vs(f),
        );
    }
    let passes = Samples::from_secs(passes);
    report.add(
        Row::new(
            Section::Control,
            format!("ListFunctions, all {pages_per_pass} pages"),
            "p50",
            passes.p50(),
            Unit::Secs,
        )
        .n(passes.len()),
    );
    Ok(())
}

/// CreateFunction of `n` zips of `mb` MB each (different content each time, so nothing is
/// deduplicated), timed to the `201` and to `Active`; the floor is the same request sent to the
/// minimal server.
async fn create_big(
    mb: usize,
    n: usize,
    floor_server: &FloorServer,
    lamina: &Lamina,
    report: &mut Report,
) -> Result<()> {
    let mut api = lamina.api().await?;
    let mut floor_conn = Conn::connect(floor_server.addr).await?;
    let (mut to_201, mut to_active, mut upload) = (Vec::new(), Vec::new(), Vec::new());
    let mut request_size = 0;
    for i in 0..n {
        let zip = crate::lamina::incompressible_zip(mb << 20, (mb * 1000 + i) as u64)?;
        let name = format!("bench-create-{mb}mb-{i}");
        let body = FunctionSpec {
            name: &name,
            runtime: "python3.12",
            handler: "app.handler",
            zip: &zip,
        }
        .create_request();
        request_size = body.len();
        let t = Instant::now();
        ok_200(&floor_conn.call(&body).await?)?;
        upload.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        api.expect(&body, 201, &format!("CreateFunction {name}"))
            .await?;
        to_201.push(t.elapsed().as_secs_f64());
        api.wait_state(&name, "State", "Active").await?;
        to_active.push(t.elapsed().as_secs_f64());
    }
    let upload = Samples::from_secs(upload);
    let floor = report.floor(
        Row::new(
            Section::Floors,
            format!(
                "same {:.1} MB CreateFunction request to the minimal server",
                request_size as f64 / 1e6
            ),
            "p50",
            upload.p50(),
            Unit::Secs,
        )
        .n(upload.len()),
    );
    for (what, s) in [("201", to_201), ("Active", to_active)] {
        let s = Samples::from_secs(s);
        report.add(
            Row::new(
                Section::Control,
                format!("CreateFunction, {mb} MB zip (random bytes), to {what}"),
                "p50",
                s.p50(),
                Unit::Secs,
            )
            .n(s.len())
            .vs(&floor),
        );
    }
    Ok(())
}
