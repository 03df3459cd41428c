//! `trigger`: HTTP API throughput: K keep-alive connections sending triggers back to back.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::http_client::ApiClient;
use crate::proc_stats;
use crate::report;
use crate::target::Target;

pub struct Trigger {
    pub concurrency: usize,
    pub duration: Duration,
    pub channel: String,
    pub pid: Option<u32>,
    /// Other processes whose CPU time is reported (Redis, for the Redis adapter).
    pub watched: Vec<proc_stats::Watched>,
}

pub async fn run(t: Target, o: Trigger) {
    let cpu_before = proc_stats::sample(o.pid).cpu;
    let others_before = proc_stats::mark(&o.watched);
    let started = Instant::now();
    let deadline = started + o.duration;
    let mut workers = Vec::new();
    for _ in 0..o.concurrency.max(1) {
        let t = t.clone();
        let channel = o.channel.clone();
        workers.push(tokio::spawn(async move {
            let mut h = report::new_histogram();
            let (mut ok, mut bad) = (0u64, 0u64);
            let mut api = match ApiClient::connect(&t).await {
                Ok(a) => a,
                Err(_) => return (h, ok, 1),
            };
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match api.trigger(&channel, "bench", "{\"n\":1}").await {
                    Ok((200, _)) => ok += 1,
                    Ok(_) => bad += 1,
                    Err(_) => {
                        bad += 1;
                        match ApiClient::connect(&t).await {
                            Ok(a) => api = a,
                            Err(_) => break,
                        }
                    }
                }
                h.saturating_record(t0.elapsed().as_micros().max(1) as u64);
            }
            (h, ok, bad)
        }));
    }
    let mut all = report::new_histogram();
    let (mut ok, mut bad) = (0u64, 0u64);
    for w in workers {
        if let Ok((h, o, b)) = w.await {
            let _ = all.add(&h);
            ok += o;
            bad += b;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, proc_stats::sample(o.pid).cpu) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    let others = others_before.since(&proc_stats::mark(&o.watched));
    println!(
        "trigger: {} ok, {} not 200 in {:.2}s at concurrency {}: {:.0} requests/s",
        ok,
        bad,
        secs,
        o.concurrency,
        ok as f64 / secs
    );
    println!("trigger: {}", report::latency_line(&all));
    report::emit(json!({
        "scenario": "trigger",
        "concurrency": o.concurrency,
        "seconds": secs,
        "ok": ok,
        "non_200": bad,
        "requests_per_second": ok as f64 / secs,
        "latency": report::latency_json(&all),
        "server_cpu_seconds": cpu,
        "watched_cpu_seconds": proc_stats::cpu_json(&others),
    }));
}
