//! `fanout`: S subscribers over C channels; a publisher triggers R events/s over HTTP, each
//! carrying its send time; subscribers record delivery latency and count what arrives.
//!
//! For missed-message recovery (docs/recovery.md) the same load runs on recorded channels
//! (`--channel-prefix` matching the app's `[[apps.recovery]]` pattern) with subscribers that opt
//! in (`--opt-in`), so its cost shows as the difference from the plain case; `--also-port`
//! (once per other node of a cluster) spreads the subscribers over the nodes round robin while
//! publishing stays on the first, so events cross the Redis bus. Subscriber `i` watches channel
//! `i % C`; with N nodes it is on node `i % N` (so with C a multiple of N each channel has
//! subscribers on one node only: the case interest-based fan-out is for) or, with
//! `--spread-channels`, on node `(i / C) % N` (every channel on every node: its worst case).
//! `--bus-metrics` reads each node's bus counter before and after publishing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, Mutex, Semaphore};

use crate::http_client::ApiClient;
use crate::proc_stats;
use crate::raw_ws::RawWs;
use crate::report::{self, SharedHistogram};
use crate::target::{now_micros, Target};
use crate::ws_client;

pub struct Fanout {
    pub subscribers: usize,
    pub channels: usize,
    pub rate: f64,
    pub duration: Duration,
    pub payload: usize,
    pub publishers: usize,
    pub source_ips: usize,
    pub pid: Option<u32>,
    /// Subscribe with the `clarion` member (`{"v":1}`), so recorded channels send stamped frames.
    pub opt_in: bool,
    /// Channel names are this prefix and a number.
    pub channel_prefix: String,
    /// Other nodes' ports: the subscribers are spread over the first node and these.
    pub also_port: Vec<u16>,
    /// Spread each channel's subscribers over every node (instead of one node per channel).
    pub spread_channels: bool,
    /// Metrics ports of the nodes whose bus messages are counted.
    pub bus_metrics: Vec<u16>,
    /// Other processes whose CPU time is reported (a second node, Redis).
    pub watched: Vec<proc_stats::Watched>,
}

pub async fn run(t: Target, o: Fanout) {
    let channels = o.channels.max(1);
    let hist = Arc::new(SharedHistogram::new());
    let received = Arc::new(AtomicU64::new(0));
    let stamped = Arc::new(AtomicU64::new(0));
    let opt_in = serde_json::json!({"v": 1});
    // Subscribe everyone first (bounded concurrency), then start reading.
    let sem = Arc::new(Semaphore::new(200));
    let mut connecting = Vec::with_capacity(o.subscribers);
    let nodes = 1 + o.also_port.len();
    for i in 0..o.subscribers {
        let node = if o.spread_channels {
            (i / channels) % nodes
        } else {
            i % nodes
        };
        let t = match node.checked_sub(1).and_then(|n| o.also_port.get(n)) {
            Some(p) => t.on_port(*p),
            None => t.clone(),
        };
        let sem = sem.clone();
        let channel = format!("{}{}", o.channel_prefix, i % channels);
        let source = ws_client::source_ip(i, o.source_ips);
        let clarion = o.opt_in.then(|| opt_in.clone());
        connecting.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.map_err(|e| e.to_string())?;
            let (mut ws, _) = RawWs::connect(&t, source).await?;
            ws.subscribe_with(&channel, clarion.as_ref()).await?;
            Ok::<_, String>(ws)
        }));
    }
    let mut readers = Vec::with_capacity(o.subscribers);
    let mut failures = 0usize;
    // Subscribers per channel: the expected deliveries of an event depend on its channel.
    let mut per_channel = vec![0u64; channels];
    for (i, c) in connecting.into_iter().enumerate() {
        match c.await {
            Ok(Ok(mut ws)) => {
                per_channel[i % channels] += 1;
                let mut samples = hist.local(i);
                let received = received.clone();
                let stamped = stamped.clone();
                let opt_in = o.opt_in;
                readers.push(tokio::spawn(async move {
                    let _ = ws
                        .read_messages(|text| {
                            if let Some(sent) = crate::target::extract_timestamp(text) {
                                samples.record(now_micros().saturating_sub(sent));
                                received.fetch_add(1, Ordering::Relaxed);
                                if opt_in && has_stamp(text) {
                                    stamped.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            true
                        })
                        .await;
                }));
            }
            _ => failures += 1,
        }
    }
    let subscribed = readers.len();
    println!("fanout: {subscribed} subscribers on {channels} channels ({failures} failed)");

    let bus_before = crate::bus_counters::all(&o.bus_metrics).await;
    let cpu_before = proc_stats::sample(o.pid).cpu;
    let others_before = proc_stats::mark(&o.watched);
    let total_events = (o.rate * o.duration.as_secs_f64()).round() as u64;
    // A job is (event number, scheduled send time): the latency counts from the schedule, so
    // time spent waiting for a free publisher is not hidden.
    let (job_tx, job_rx) = mpsc::channel::<(u64, u64)>(1024);
    let ok_per_channel: Arc<Vec<AtomicU64>> =
        Arc::new((0..channels).map(|_| AtomicU64::new(0)).collect());
    let job_rx = Arc::new(Mutex::new(job_rx));
    let sent_ok = Arc::new(AtomicU64::new(0));
    let sent_err = Arc::new(AtomicU64::new(0));
    let pad = "x".repeat(o.payload.saturating_sub(24));
    let mut publishers = Vec::new();
    for _ in 0..o.publishers.max(1) {
        let t = t.clone();
        let rx = job_rx.clone();
        let ok = sent_ok.clone();
        let ok_per_channel = ok_per_channel.clone();
        let err = sent_err.clone();
        let pad = pad.clone();
        let prefix = o.channel_prefix.clone();
        publishers.push(tokio::spawn(async move {
            let Ok(mut api) = ApiClient::connect(&t).await else {
                return;
            };
            loop {
                let job = rx.lock().await.recv().await;
                let Some((n, scheduled)) = job else { break };
                let ch = (n % channels as u64) as usize;
                let channel = format!("{prefix}{ch}");
                let data = format!("{{\"t\":{scheduled},\"p\":\"{pad}\"}}");
                match api.trigger(&channel, "bench", &data).await {
                    Ok((200, _)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        ok_per_channel[ch].fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        err.fetch_add(1, Ordering::Relaxed);
                    }
                };
            }
        }));
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / o.rate.max(0.001)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..total_events {
        tick.tick().await;
        if job_tx.send((n, now_micros())).await.is_err() {
            break;
        }
    }
    drop(job_tx);
    for p in publishers {
        let _ = p.await;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    // Give the last deliveries time to arrive, then stop waiting as soon as everything is in.
    let expected: u64 = ok_per_channel
        .iter()
        .zip(&per_channel)
        .map(|(ok, subs)| ok.load(Ordering::Relaxed) * subs)
        .sum();
    let drain_until = Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_after = proc_stats::sample(o.pid).cpu;
    let others = others_before.since(&proc_stats::mark(&o.watched));
    let elapsed = started.elapsed().as_secs_f64();
    let bus =
        crate::bus_counters::deltas(&bus_before, &crate::bus_counters::all(&o.bus_metrics).await);
    let got = received.load(Ordering::Relaxed);
    // Stopped readers hand their last samples to the histogram as they are dropped.
    for r in &readers {
        r.abort();
    }
    for r in readers {
        let _ = r.await;
    }
    let lost = expected.saturating_sub(got);
    let h = hist.merged();
    let cpu = match (cpu_before, cpu_after) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    let cpu_per_million = cpu.filter(|_| got > 0).map(|c| c / (got as f64 / 1e6));
    // Every process of the deployment (nodes and Redis), when others are watched.
    let cpu_all = cpu.map(|c| c + proc_stats::cpu_total(&others).unwrap_or(0.0));
    let cpu_all_per_million = cpu_all
        .filter(|_| got > 0 && !others.is_empty())
        .map(|c| c / (got as f64 / 1e6));
    println!(
        "fanout: {} events published in {:.2}s ({} errors), {} deliveries expected, {} received, {} lost, {:.0} deliveries/s",
        sent_ok.load(Ordering::Relaxed),
        publish_secs,
        sent_err.load(Ordering::Relaxed),
        expected,
        got,
        lost,
        got as f64 / elapsed
    );
    println!("fanout: {}", report::latency_line(&h));
    if o.opt_in {
        println!(
            "fanout: {} of {} received frames carried a recovery stamp",
            stamped.load(Ordering::Relaxed),
            got
        );
    }
    if !bus.is_empty() {
        let shown: Vec<String> = bus
            .iter()
            .map(|b| b.map_or_else(|| "?".to_string(), |b| format!("{b:.0}")))
            .collect();
        println!(
            "fanout: bus messages received per node (metrics ports {:?}): {}",
            o.bus_metrics,
            shown.join(", ")
        );
    }
    if let Some(c) = cpu_all_per_million {
        println!("fanout: all watched processes together: {c:.2} CPU-s per million deliveries");
    }
    if let Some(c) = cpu_per_million {
        println!(
            "fanout: server CPU {:.2} s, {:.2} CPU-s per million deliveries",
            cpu.unwrap_or(0.0),
            c
        );
    }
    report::emit(json!({
        "scenario": "fanout",
        "subscribers_requested": o.subscribers,
        "subscribers": subscribed,
        "subscriber_failures": failures,
        "channels": channels,
        "rate": o.rate,
        "seconds": publish_secs,
        "published": sent_ok.load(Ordering::Relaxed),
        "publish_errors": sent_err.load(Ordering::Relaxed),
        "expected": expected,
        "received": got,
        "lost": lost,
        "deliveries_per_second": got as f64 / elapsed,
        "latency": report::latency_json(&h),
        "server_cpu_seconds": cpu,
        "cpu_seconds_per_million": cpu_per_million,
        "opt_in": o.opt_in,
        "stamped": o.opt_in.then(|| stamped.load(Ordering::Relaxed)),
        "nodes": nodes,
        "spread_channels": o.spread_channels,
        "bus_received_per_node": bus,
        "watched_cpu_seconds": proc_stats::cpu_json(&others),
        "cpu_seconds_per_million_all": cpu_all_per_million,
    }));
}

/// Whether a frame ends with a recovery stamp (`…,"clarion":{"epoch":…,"offset":…}}`): the
/// stamp is appended last, so only the tail is searched.
fn has_stamp(frame: &[u8]) -> bool {
    let tail = frame.get(frame.len().saturating_sub(80)..).unwrap_or(frame);
    crate::target::find(tail, b"\"clarion\":{").is_some()
}
