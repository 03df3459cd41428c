//! `count-churn`: what the client-side subscription count (docs/protocol.md §3.7, the app's
//! `enable_subscription_count`) costs on a big channel whose membership keeps changing. S
//! subscribers sit on one channel; a few churner connections then subscribe to it and
//! unsubscribe again, M operations per second in all. Run once with the switch on and once
//! with it off: the difference in server CPU per operation is the count's price (each
//! subscribe and unsubscribe recounts, and above 100 subscriptions the count frame to all S
//! subscribers is sent at most once per 5 s).
//!
//! Reported: server CPU per churn operation, subscribe → `subscription_succeeded` latency, and
//! the count frames the subscribers received during the churn.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;

use crate::proc_stats::{self, Watched};
use crate::raw_ws::RawWs;
use crate::report;
use crate::target::{find, Target};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Subscribers that stay on the channel.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    #[arg(long, default_value = "count-churn")]
    channel: String,
    /// Churn operations (a subscribe or an unsubscribe) per second, all churners together.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Connections doing the churn.
    #[arg(long, default_value_t = 50)]
    churners: usize,
    /// Seconds of churn.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

pub async fn run(t: Target, a: Args, pid: Option<u32>, watched: Vec<Watched>) {
    let count_frames = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(Semaphore::new(200));
    let mut connecting = Vec::with_capacity(a.subscribers);
    for _ in 0..a.subscribers {
        let (t, sem, channel) = (t.clone(), sem.clone(), a.channel.clone());
        connecting.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.map_err(|e| e.to_string())?;
            let (mut ws, _) = RawWs::connect(&t, None).await?;
            ws.subscribe(&channel).await?;
            Ok::<_, String>(ws)
        }));
    }
    let mut readers = Vec::with_capacity(a.subscribers);
    let mut failures = 0usize;
    for c in connecting {
        let Ok(Ok(mut ws)) = c.await else {
            failures += 1;
            continue;
        };
        let count_frames = count_frames.clone();
        readers.push(tokio::spawn(async move {
            let _ = ws
                .read_messages(|text| {
                    if find(text, b"pusher_internal:subscription_count").is_some() {
                        count_frames.fetch_add(1, Ordering::Relaxed);
                    }
                    true
                })
                .await;
        }));
    }
    println!(
        "count-churn: {} subscribers on {} ({failures} failed)",
        readers.len(),
        a.channel
    );
    // Let the counts of the subscribe phase go out (the trailing edge is 5 s) before measuring.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let frames0 = count_frames.load(Ordering::Relaxed);
    let cpu0 = pid.and_then(proc_stats::cpu_seconds);
    let others0 = proc_stats::mark(&watched);
    let churners = a.churners.max(1);
    let per_churner = a.rate / churners as f64;
    let ops_each = (per_churner * a.duration as f64).round() as u64;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(churners);
    for k in 0..churners {
        let (t, channel) = (t.clone(), a.channel.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = report::new_histogram();
            let (mut ops, mut errors) = (0u64, 0u64);
            let Ok((mut ws, _)) = RawWs::connect(&t, None).await else {
                return (h, ops, 1);
            };
            let unsubscribe =
                json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}).to_string();
            let period = Duration::from_secs_f64(1.0 / per_churner.max(0.001));
            // Churners start spread over one period, so the operations are evenly spaced.
            tokio::time::sleep(period.mul_f64(k as f64 / churners as f64)).await;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for n in 0..ops_each {
                tick.tick().await;
                if n % 2 == 0 {
                    let t0 = Instant::now();
                    match ws.subscribe(&channel).await {
                        Ok(()) => h.saturating_record(t0.elapsed().as_micros().max(1) as u64),
                        Err(_) => {
                            errors += 1;
                            break;
                        }
                    }
                } else if ws.send_text(&unsubscribe).await.is_err() {
                    errors += 1;
                    break;
                }
                ops += 1;
            }
            (h, ops, errors)
        }));
    }
    let mut subscribe = report::new_histogram();
    let (mut ops, mut errors) = (0u64, 0u64);
    for task in tasks {
        if let Ok((h, o, e)) = task.await {
            let _ = subscribe.add(&h);
            ops += o;
            errors += e;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // The last count of the churn goes out on the trailing edge, up to 5 s later: its cost
    // belongs to the churn (both variants wait the same).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let cpu = match (cpu0, pid.and_then(proc_stats::cpu_seconds)) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    let others = others0.since(&proc_stats::mark(&watched));
    let frames = count_frames.load(Ordering::Relaxed) - frames0;
    for r in &readers {
        r.abort();
    }
    let cpu_per_op = cpu.filter(|_| ops > 0).map(|c| c / ops as f64 * 1e6);
    println!(
        "count-churn: {ops} operations in {secs:.2}s ({:.0}/s, {errors} errors); {frames} count frames to the subscribers",
        ops as f64 / secs
    );
    println!(
        "count-churn: subscribe -> succeeded {}",
        report::latency_line(&subscribe)
    );
    if let Some(us) = cpu_per_op {
        println!("count-churn: server CPU {us:.1} µs per operation");
    }
    report::emit(json!({
        "scenario": "count-churn",
        "subscribers": readers.len(),
        "subscriber_failures": failures,
        "churners": churners,
        "rate": a.rate,
        "seconds": secs,
        "operations": ops,
        "operations_per_second": ops as f64 / secs,
        "errors": errors,
        "count_frames": frames,
        "latency": report::latency_json(&subscribe),
        "server_cpu_seconds": cpu,
        "server_cpu_us_per_operation": cpu_per_op,
        "watched_cpu_seconds": proc_stats::cpu_json(&others),
    }));
}
