//! `history-memory`: what memory history (recovery with `adapter = "local"`, docs/recovery.md)
//! costs. Fills K recorded channels with E events each through `batch_events` and reports the
//! server's RSS growth per channel and per stored event, beside what the server itself counts
//! (`<prefix>_history_bytes` from its metrics endpoint, docs/operations.md): the gap between the
//! two is the bookkeeping the byte cap (`max_history_memory`) does not see.
//!
//! Run it with `max_history_memory = 0` (or a cap above K × E × event size), or the least
//! recently published channels are forgotten on the way and the figures mean less.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http_client::{self, ApiClient};
use crate::proc_stats;
use crate::report;
use crate::target::Target;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recorded channels to fill.
    #[arg(long, default_value_t = 10_000)]
    channels: usize,
    /// Events per channel (set it to the app's `history_size` to fill every ring).
    #[arg(long, default_value_t = 100)]
    events: usize,
    /// Approximate bytes of event data.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    #[arg(long, default_value = "recorded-mem-")]
    channel_prefix: String,
    /// Keep-alive connections publishing batches.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Events per `batch_events` request (the server's limit is 10 by default).
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// The server's metrics port, to read its own history byte count.
    #[arg(long)]
    metrics_port: Option<u16>,
    #[arg(long, default_value = "clarion")]
    metrics_prefix: String,
}

pub async fn run(t: Target, a: Args, pid: Option<u32>) {
    let metric = format!("{}_history_bytes", a.metrics_prefix);
    let history_bytes = |port: Option<u16>| {
        let (host, metric) = (t.host.clone(), metric.clone());
        async move {
            let (status, body) = http_client::get_plain(&host, port?, "/metrics")
                .await
                .ok()?;
            (status == 200)
                .then(|| http_client::metric_sum(&String::from_utf8_lossy(&body), &metric))
                .flatten()
        }
    };
    let rss_before = pid.and_then(proc_stats::rss_bytes);
    let bytes_before = history_bytes(a.metrics_port).await;
    let cpu_before = pid.and_then(proc_stats::cpu_seconds);

    // Batch b holds events number b*batch .. (b+1)*batch of the sequence that goes round the
    // channels once per "round", so every channel grows at the same pace.
    let total = a.channels.max(1) * a.events;
    let batch = a.batch.max(1);
    let batches = total.div_ceil(batch);
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let pad: Arc<str> = "x".repeat(a.payload.saturating_sub(24)).into();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..a.publishers.max(1) {
        let (t, next, ok, failed) = (t.clone(), next.clone(), ok.clone(), failed.clone());
        let (pad, prefix, first_error) =
            (pad.clone(), a.channel_prefix.clone(), first_error.clone());
        let channels = a.channels.max(1);
        workers.push(tokio::spawn(async move {
            let Ok(mut api) = ApiClient::connect(&t).await else {
                return;
            };
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    break;
                }
                let events: Vec<(String, &str, String)> = (b * batch..((b + 1) * batch).min(total))
                    .map(|k| {
                        let data = format!("{{\"t\":{k},\"p\":\"{pad}\"}}");
                        (format!("{prefix}{}", k % channels), "bench", data)
                    })
                    .collect();
                let n = events.len() as u64;
                match api.batch(&events).await {
                    Ok(200) => {
                        ok.fetch_add(n, Ordering::Relaxed);
                    }
                    other => {
                        failed.fetch_add(n, Ordering::Relaxed);
                        if let Ok(mut f) = first_error.lock() {
                            f.get_or_insert(format!("{other:?}"));
                        }
                        if other.is_err() {
                            match ApiClient::connect(&t).await {
                                Ok(a) => api = a,
                                Err(_) => break,
                            }
                        }
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, pid.and_then(proc_stats::cpu_seconds)) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    // Let the allocator settle before reading memory, as `idle` does.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = pid.and_then(proc_stats::rss_bytes);
    let bytes_after = history_bytes(a.metrics_port).await;
    let stored = ok.load(Ordering::Relaxed);
    let growth = match (rss_before, rss_after) {
        (Some(b), Some(a)) => Some(a as f64 - b as f64),
        _ => None,
    };
    let per = |what: Option<f64>, n: u64| what.filter(|_| n > 0).map(|g| g / n as f64);
    let held = match (bytes_before, bytes_after) {
        (Some(b), Some(a)) => Some(a - b),
        (None, Some(a)) => Some(a),
        _ => None,
    };
    println!(
        "history-memory: {stored} events stored on {} channels in {secs:.2}s ({} failed, {:.0} events/s)",
        a.channels,
        failed.load(Ordering::Relaxed),
        stored as f64 / secs
    );
    if let Some(g) = growth {
        println!(
            "history-memory: server RSS +{:.1} MB: {:.0} bytes per channel, {:.0} bytes per event",
            g / 1e6,
            g / a.channels.max(1) as f64,
            per(Some(g), stored).unwrap_or(0.0)
        );
    }
    if let Some(h) = held {
        println!(
            "history-memory: the server counts {:.1} MB of history ({:.0} bytes per event)",
            h / 1e6,
            per(Some(h), stored).unwrap_or(0.0)
        );
    }
    let err = first_error.lock().ok().and_then(|e| e.clone());
    report::emit(json!({
        "scenario": "history-memory",
        "channels": a.channels,
        "events_per_channel": a.events,
        "payload": a.payload,
        "stored": stored,
        "failed": failed.load(Ordering::Relaxed),
        "seconds": secs,
        "events_per_second": stored as f64 / secs,
        "server_cpu_seconds": cpu,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "rss_growth_bytes": growth,
        "rss_per_channel_bytes": growth.map(|g| g / a.channels.max(1) as f64),
        "rss_per_event_bytes": per(growth, stored),
        "history_bytes_metric": held,
        "history_bytes_per_event": per(held, stored),
        "first_error": err.map(Value::String),
    }));
}
