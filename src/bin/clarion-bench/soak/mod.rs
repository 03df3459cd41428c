//! `soak`: an hour (by default) of mixed load at a steady level, sampled every minute, to show
//! that nothing drifts: the server's RSS and open files stay flat after the warm-up, and no
//! event is lost (issue 19, part 3).
//!
//! The load: long-lived receivers on public and private channels; connections that join a
//! random one of those channels, stay a while and leave; presence members joining and leaving,
//! watched by one member per channel; whispering pairs on private channels; signed HTTP
//! triggers, single and batched; and now and then a slow consumer, which the server must close
//! with 4100 (`slow`). Every triggered event and client event carries its channel's next number
//! and every receiver that reads checks it got all of them, in order (`seq`). Each sample reads
//! the server's RSS and open files from /proc, and its tokio tasks and queued outbound frames
//! from its /metrics (`clarion_runtime_tasks`, `clarion_queued_frames`).

mod conn;
mod load;
mod presence;
mod seq;
mod slow;
mod verdict;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{watch, Semaphore};

use crate::http_client;
use crate::proc_stats;
use crate::report;
use crate::target::Target;
use conn::{Counts, Ctx};
use verdict::Sample;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds of load.
    #[arg(long, default_value_t = 3600)]
    duration: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 60)]
    sample_every: u64,
    /// Seconds at the start left out of the drift verdict.
    #[arg(long, default_value_t = 300)]
    warmup: u64,
    /// Largest max/min - 1 of RSS and of open fds after the warm-up that passes.
    #[arg(long, default_value_t = 0.05)]
    tolerance: f64,
    /// The server's metrics port (tasks, queued frames, the 4100 count).
    #[arg(long)]
    metrics_port: Option<u16>,
    /// The server's metric name prefix.
    #[arg(long, default_value = "clarion")]
    metrics_prefix: String,
    /// Long-lived receivers, spread over the triggered channels.
    #[arg(long, default_value_t = 3000)]
    connections: usize,
    /// Triggered channels (every other one private).
    #[arg(long, default_value_t = 100)]
    channels: usize,
    /// HTTP-triggered events per second over all channels.
    #[arg(long, default_value_t = 1400.0)]
    trigger_rate: f64,
    /// Keep-alive HTTP publishers (each owns a share of the channels).
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Every Nth request of a publisher is a batch (0: single triggers only).
    #[arg(long, default_value_t = 4)]
    batch_every: u64,
    #[arg(long, default_value_t = 5)]
    batch_size: usize,
    /// Bytes of padding per triggered event.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Connection slots joining a random channel, staying, leaving and joining again.
    #[arg(long, default_value_t = 200)]
    churners: usize,
    /// Seconds a churning connection stays: MIN-MAX.
    #[arg(long, default_value = "5-60", value_parser = parse_range)]
    churn_life: (u64, u64),
    /// Presence channels, each watched by one member for the whole run.
    #[arg(long, default_value_t = 20)]
    presence_channels: usize,
    /// Presence member slots joining and leaving.
    #[arg(long, default_value_t = 200)]
    presence_churners: usize,
    /// Seconds a presence member stays: MIN-MAX.
    #[arg(long, default_value = "5-30", value_parser = parse_range)]
    presence_life: (u64, u64),
    /// Whispering pairs on private channels.
    #[arg(long, default_value_t = 200)]
    pairs: usize,
    /// Client events per second per pair.
    #[arg(long, default_value_t = 10.0)]
    whisper_rate: f64,
    /// Seconds between slow consumers (0: none).
    #[arg(long, default_value_t = 180)]
    slow_every: u64,
    /// Events per second flooding a slow consumer's channel.
    #[arg(long, default_value_t = 60.0)]
    slow_rate: f64,
    /// Bytes of padding per flood event.
    #[arg(long, default_value_t = 1024)]
    slow_payload: usize,
    /// Seconds of flood before a slow consumer still open counts as not closed.
    #[arg(long, default_value_t = 150)]
    slow_timeout: u64,
    /// The slow consumer's socket receive buffer, in bytes.
    #[arg(long, default_value_t = 4096)]
    slow_recv_buffer: u32,
    /// Self-check: every receiver pretends to miss every Nth message (0: off). The lost count
    /// must then equal the skipped count.
    #[arg(long, default_value_t = 0)]
    skip_every: u64,
    /// Connects in flight at once while the long-lived connections are opened.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once('-').ok_or("expected MIN-MAX")?;
    let a: u64 = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u64 = b.parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a > b {
        return Err(format!("{a} > {b}"));
    }
    Ok((a, b))
}

pub async fn run(t: Target, a: Args, pid: Option<u32>) {
    match soak(t, a, pid).await {
        Ok(v) => report::emit(v),
        Err(e) => {
            println!("soak: failed: {e}");
            report::emit(json!({"scenario": "soak", "error": e}));
        }
    }
}

/// Waits until `n` reaches `want` (or `within` passes); false if it did not.
async fn wait_count(n: &AtomicU64, want: u64, within: Duration) -> bool {
    let until = Instant::now() + within;
    while n.load(Ordering::Relaxed) < want {
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

async fn soak(t: Target, a: Args, pid: Option<u32>) -> Result<serde_json::Value, String> {
    let (stop_tx, stop) = watch::channel(false);
    let (drain_tx, drain) = watch::channel(false);
    let (watchers_tx, watchers_done) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        t: t.clone(),
        counts: Counts::default(),
        stop,
        drain,
        skip_every: a.skip_every,
    });
    let chans = Arc::new(load::channels(a.channels));

    // The long-lived part first: watchers, receivers, pairs.
    let ready = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::new();
    for i in 0..a.presence_channels {
        let w = presence::watcher(ctx.clone(), i, ready.clone(), watchers_done.clone());
        watchers.push(tokio::spawn(w));
    }
    if !wait_count(&ready, a.presence_channels as u64, Duration::from_secs(30)).await {
        return Err("the presence watchers did not all join".into());
    }
    let ready = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let mut receivers = Vec::new();
    for i in 0..a.connections {
        let (ctx, ch, ready, sem) = (
            ctx.clone(),
            chans[i % chans.len()].clone(),
            ready.clone(),
            sem.clone(),
        );
        receivers.push(tokio::spawn(load::base(ctx, ch, ready, sem)));
    }
    if !wait_count(&ready, a.connections as u64, Duration::from_secs(120)).await {
        return Err(format!(
            "only {} of {} long-lived connections subscribed",
            ready.load(Ordering::Relaxed),
            a.connections
        ));
    }
    for i in 0..a.pairs {
        match load::pair(ctx.clone(), i, a.whisper_rate).await {
            Some(h) => receivers.push(h),
            None => return Err(format!("whispering pair {i} could not join")),
        }
    }
    println!(
        "soak: {} long-lived connections on {} channels, {} pairs, {} presence watchers; load for {} s",
        a.connections, a.channels, a.pairs, a.presence_channels, a.duration
    );

    // The moving part.
    let started = Instant::now();
    let mut load_tasks = Vec::new();
    for p in 0..a.publishers.max(1) {
        let mine: Vec<_> = chans
            .iter()
            .enumerate()
            .filter(|(i, _)| i % a.publishers.max(1) == p)
            .map(|(_, c)| c.clone())
            .collect();
        let plan = load::Publishing {
            rate: a.trigger_rate / a.publishers.max(1) as f64,
            batch_every: a.batch_every,
            batch_size: a.batch_size,
            payload: a.payload,
        };
        load_tasks.push(tokio::spawn(load::publisher(ctx.clone(), mine, plan)));
    }
    for _ in 0..a.churners {
        receivers.push(tokio::spawn(load::churner(
            ctx.clone(),
            chans.clone(),
            a.churn_life,
        )));
    }
    let next_user = Arc::new(AtomicU64::new(0));
    for _ in 0..a.presence_churners {
        let c = presence::churner(
            ctx.clone(),
            a.presence_channels,
            a.presence_life,
            next_user.clone(),
        );
        load_tasks.push(tokio::spawn(c));
    }
    let plan = slow::SlowPlan {
        every: a.slow_every,
        rate: a.slow_rate,
        payload: a.slow_payload,
        timeout: a.slow_timeout,
        recv_buffer: a.slow_recv_buffer,
        metrics: a.metrics_port.map(|p| (p, a.metrics_prefix.clone())),
    };
    let slow_task = tokio::spawn(slow::episodes(ctx.clone(), plan, started));

    let mut samples = Vec::new();
    let mut sampler = Sampler::new(pid, &a, &t.host);
    let mut next = started;
    let end = started + Duration::from_secs(a.duration);
    loop {
        next += Duration::from_secs(a.sample_every.max(1));
        if next > end {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
        let s = sampler.take(&ctx.counts, started).await;
        println!("{}", sample_line(&s));
        samples.push(s);
    }
    tokio::time::sleep_until(end.into()).await;

    // Stop: the publishers and senders finish their last request, the slow consumer in progress
    // is seen to its end, then every receiver reads up to the last answered event.
    println!("soak: stopping the load");
    let _ = stop_tx.send(true);
    for task in load_tasks {
        let _ = task.await;
    }
    let episodes = slow_task.await.unwrap_or_default();
    let _ = drain_tx.send(true);
    let finishing = async {
        for task in receivers {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(60), finishing)
        .await
        .is_err()
    {
        println!("soak: some receivers did not finish within 60 s");
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // the last member_removed events
    let _ = watchers_tx.send(true);
    for w in watchers {
        let _ = w.await;
    }
    let last = sampler.take(&ctx.counts, started).await;
    println!("{}", sample_line(&last));
    finish(&a, &ctx.counts, samples, episodes, last)
}

/// The RESULT of a finished run.
fn finish(
    a: &Args,
    c: &Counts,
    samples: Vec<Sample>,
    episodes: Vec<slow::Episode>,
    last: Sample,
) -> Result<serde_json::Value, String> {
    let g = Counts::get;
    let lost = c.lost.load(Ordering::Relaxed).max(0) as u64;
    let v = verdict::judge(&samples, a.warmup as f64, a.tolerance, lost);
    let added_missing = g(&c.presence_joins) as i64 - g(&c.member_added) as i64;
    let removed_missing = g(&c.presence_leaves) as i64 - g(&c.member_removed) as i64;
    let slow_opened = g(&c.slow_opened);
    let slow_closed = g(&c.slow_closed_4100);
    let pct = |d: Option<f64>| d.map_or("n/a".to_string(), |d| format!("{:.2}%", d * 100.0));
    println!(
        "soak: events sent {} (+{} client events), received {}, lost {}, duplicated {}, out of order {}, skipped on purpose {}",
        g(&c.events_sent),
        g(&c.client_events_sent),
        g(&c.received),
        lost,
        g(&c.duplicated),
        g(&c.out_of_order),
        g(&c.skipped)
    );
    println!(
        "soak: presence joins {} / member_added {}, leaves {} / member_removed {}; slow consumers {} opened, {} closed with 4100; {} connects ({} failed), {} receivers dropped, {} trigger errors",
        g(&c.presence_joins),
        g(&c.member_added),
        g(&c.presence_leaves),
        g(&c.member_removed),
        slow_opened,
        slow_closed,
        g(&c.connects),
        g(&c.connect_failures),
        g(&c.dropped),
        g(&c.trigger_errors)
    );
    println!(
        "soak: after {} s of warm-up ({} samples): RSS drift {}, fds drift {} (max/min - 1, tolerance {:.0}%); verdict: {}{}",
        a.warmup,
        v.window_samples,
        pct(v.rss_drift),
        pct(v.fds_drift),
        a.tolerance * 100.0,
        if v.pass { "PASS" } else { "FAIL" },
        if v.reasons.is_empty() { String::new() } else { format!(" ({})", v.reasons.join("; ")) }
    );
    Ok(json!({
        "scenario": "soak",
        "duration": a.duration,
        "sample_every": a.sample_every,
        "warmup": a.warmup,
        "skip_every": a.skip_every,
        "load": {
            "connections": a.connections, "channels": a.channels, "trigger_rate": a.trigger_rate,
            "publishers": a.publishers, "batch_every": a.batch_every, "batch_size": a.batch_size,
            "payload": a.payload, "churners": a.churners, "churn_life": a.churn_life,
            "presence_channels": a.presence_channels, "presence_churners": a.presence_churners,
            "presence_life": a.presence_life, "pairs": a.pairs, "whisper_rate": a.whisper_rate,
            "slow_every": a.slow_every, "slow_rate": a.slow_rate, "slow_payload": a.slow_payload,
        },
        "events_sent": g(&c.events_sent),
        "client_events_sent": g(&c.client_events_sent),
        "received": g(&c.received),
        "lost": lost,
        "duplicated": g(&c.duplicated),
        "out_of_order": g(&c.out_of_order),
        "skipped": g(&c.skipped),
        "trigger_errors": g(&c.trigger_errors),
        "connects": g(&c.connects),
        "connect_failures": g(&c.connect_failures),
        "receivers_dropped": g(&c.dropped),
        "presence": {
            "joins": g(&c.presence_joins), "member_added": g(&c.member_added),
            "leaves": g(&c.presence_leaves), "member_removed": g(&c.member_removed),
            "member_added_missing": added_missing, "member_removed_missing": removed_missing,
        },
        "slow_consumers": { "opened": slow_opened, "closed_4100": slow_closed, "episodes": episodes },
        "samples": samples,
        "final": last,
        "verdict": v,
    }))
}

/// One line per sample.
fn sample_line(s: &Sample) -> String {
    let mb = |b: Option<u64>| b.map_or("n/a".into(), |b| format!("{:.1} MB", b as f64 / 1e6));
    let n = |v: Option<u64>| v.map_or("n/a".into(), |v| v.to_string());
    let p = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.0}%"));
    format!(
        "soak: t={:>5.0}s rss {} fds {} tasks {} queued {} conns {} (server {}) sent {}+{} recv {} lost {} slow {}/{} cpu server {} bench {}",
        s.t,
        mb(s.rss),
        n(s.fds),
        n(s.tasks),
        n(s.queued_frames),
        s.connections,
        n(s.server_connections),
        s.events_sent,
        s.client_events_sent,
        s.received,
        s.lost,
        s.slow_closed_4100,
        s.slow_opened,
        p(s.server_cpu_pct),
        p(s.bench_cpu_pct),
    )
}

/// Takes the samples, keeping the previous CPU readings for the per-interval percentages.
struct Sampler {
    pid: Option<u32>,
    metrics: Option<(u16, String)>,
    host: String,
    prev: (Instant, Option<f64>, Option<f64>),
}

impl Sampler {
    fn new(pid: Option<u32>, a: &Args, host: &str) -> Sampler {
        let me = std::process::id();
        Sampler {
            pid,
            metrics: a.metrics_port.map(|p| (p, a.metrics_prefix.clone())),
            host: host.to_string(),
            prev: (
                Instant::now(),
                pid.and_then(proc_stats::cpu_seconds),
                proc_stats::cpu_seconds(me),
            ),
        }
    }

    async fn take(&mut self, c: &Counts, started: Instant) -> Sample {
        let now = Instant::now();
        let server_cpu = self.pid.and_then(proc_stats::cpu_seconds);
        let bench_cpu = proc_stats::cpu_seconds(std::process::id());
        let wall = now.duration_since(self.prev.0).as_secs_f64().max(1e-6);
        let pct = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / wall * 100.0);
        let (server_cpu_pct, bench_cpu_pct) =
            (pct(self.prev.1, server_cpu), pct(self.prev.2, bench_cpu));
        self.prev = (now, server_cpu, bench_cpu);
        let mut s = Sample {
            t: now.duration_since(started).as_secs_f64(),
            rss: self.pid.and_then(proc_stats::rss_bytes),
            fds: self.pid.and_then(proc_stats::open_fds),
            connections: c.connections.load(Ordering::Relaxed).max(0) as u64,
            events_sent: Counts::get(&c.events_sent),
            client_events_sent: Counts::get(&c.client_events_sent),
            received: Counts::get(&c.received),
            lost: c.lost.load(Ordering::Relaxed).max(0) as u64,
            duplicated: Counts::get(&c.duplicated),
            out_of_order: Counts::get(&c.out_of_order),
            slow_opened: Counts::get(&c.slow_opened),
            slow_closed_4100: Counts::get(&c.slow_closed_4100),
            server_cpu_pct,
            bench_cpu_pct,
            ..Sample::default()
        };
        if let Some((port, prefix)) = &self.metrics {
            if let Ok((200, body)) = http_client::get_plain(&self.host, *port, "/metrics").await {
                let text = String::from_utf8_lossy(&body);
                let m = |n: &str| {
                    http_client::metric_sum(&text, &format!("{prefix}_{n}")).map(|v| v as u64)
                };
                s.tasks = m("runtime_tasks");
                s.queued_frames = m("queued_frames");
                s.server_connections = m("connected");
            }
        }
        s
    }
}
