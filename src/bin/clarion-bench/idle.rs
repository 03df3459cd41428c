//! `idle`: open N subscribed connections, then measure what they cost the server at rest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;

use crate::proc_stats;
use crate::report;
use crate::target::Target;
use crate::ws_client::{self, Ws};

pub struct Idle {
    pub connections: usize,
    pub channels: usize,
    pub concurrency: usize,
    pub source_ips: usize,
    pub hold: Duration,
    pub pid: Option<u32>,
}

pub async fn run(t: Target, o: Idle) {
    let before = proc_stats::sample(o.pid);
    let sem = Arc::new(Semaphore::new(o.concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(o.connections);
    for i in 0..o.connections {
        let t = t.clone();
        let sem = sem.clone();
        let channel = format!("idle-{}", i % o.channels.max(1));
        let source = ws_client::source_ip(i, o.source_ips);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.map_err(|e| e.to_string())?;
            let (mut ws, _) = ws_client::connect(&t, source).await?;
            ws_client::subscribe(&mut ws, &channel, None, None).await?;
            Ok::<Ws, String>(ws)
        }));
    }
    let mut open = Vec::with_capacity(o.connections);
    let mut failures = 0usize;
    let mut first_error = None;
    for task in tasks {
        let err = match task.await {
            Ok(Ok(ws)) => {
                open.push(ws);
                continue;
            }
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
        };
        failures += 1;
        first_error.get_or_insert(err);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = open.len() as f64 / elapsed;
    // Server CPU spent per connection (accept, upgrade, handshake, subscribe).
    let cpu_per_conn_us = match (before.cpu, proc_stats::sample(o.pid).cpu) {
        (Some(b), Some(a)) if !open.is_empty() => Some((a - b) / open.len() as f64 * 1e6),
        _ => None,
    };
    if let Some(us) = cpu_per_conn_us {
        println!("idle: server CPU {us:.1} µs per connection+subscribe");
    }
    println!(
        "idle: {} connected, {} failed in {:.2}s ({:.0} connections+subscribes/s)",
        open.len(),
        failures,
        elapsed,
        rate
    );
    if let Some(e) = &first_error {
        println!("idle: first failure: {e}");
    }
    // Let the server settle (allocator, lazily freed buffers) before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = proc_stats::sample(o.pid);
    let per_conn = match (before.rss, after.rss) {
        (Some(b), Some(a)) if !open.is_empty() => {
            Some(a.saturating_sub(b) as f64 / open.len() as f64)
        }
        _ => None,
    };
    if let (Some(b), Some(a)) = (before.rss, after.rss) {
        println!(
            "idle: server RSS {:.1} MB -> {:.1} MB, {:.2} KB per connection",
            b as f64 / 1e6,
            a as f64 / 1e6,
            per_conn.unwrap_or(0.0) / 1024.0
        );
    }
    tokio::time::sleep(o.hold).await;
    let connected = open.len();
    drop(open);
    report::emit(json!({
        "scenario": "idle",
        "connections": o.connections,
        "connected": connected,
        "failures": failures,
        "seconds": elapsed,
        "connect_rate": rate,
        "rss_before": before.rss,
        "rss_after": after.rss,
        "rss_per_connection_bytes": per_conn,
        "server_cpu_us_per_connection": cpu_per_conn_us,
    }));
}
