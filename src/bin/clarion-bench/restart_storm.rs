//! `restart-storm`: N connections on one server, a third of them members of presence
//! channels, the rest on public channels; the server is restarted (`--restart-cmd`, which
//! must return once it answers again and has written its new PID to `--pid-file`) and every
//! connection comes back the way pusher-js 8 does in Node or a browser. Measured: the time
//! until every connection is subscribed again (from the restart, and from the server being back),
//! the restarted server's peak RSS, the presence events it sent, connect attempts refused.
//!
//! pusher-js's pattern (src/core/connection/connection_manager.ts and
//! src/runtimes/isomorphic/default_strategy.ts): a close with 4200 (what Clarion sends when it
//! stops) is "reconnect now"; an attempt that fails (the server is not back yet) is retried
//! when the ws loop's timeout runs out, 15 s, then 30 s, then 60 s at most; pusher-js adds
//! no jitter, so everyone refused comes back at the same moment. Its wss/HTTP fallbacks,
//! which cannot reach a plain `ws://` Clarion, are left out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::proc_stats::{self, Proc};
use crate::raw_ws::RawWs;
use crate::report;
use crate::target::{find, now_micros, Target};
use crate::ws_client;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 19_000)]
    connections: usize,
    #[arg(long, default_value_t = 100)]
    channels: usize,
    /// One connection in this many joins a presence channel (3: a third).
    #[arg(long, default_value_t = 3)]
    presence_every: usize,
    /// Connects in flight at once for the initial connections (not in the storm: then
    /// everyone comes back when pusher-js would).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// The server to storm when it is not `--port` (a node that `--restart-cmd` manages).
    #[arg(long)]
    storm_port: Option<u16>,
    /// A shell command that restarts the server and returns once it answers again.
    #[arg(long)]
    restart_cmd: String,
    /// The file holding the server's PID (re-read after the restart).
    #[arg(long)]
    pid_file: std::path::PathBuf,
    /// First retry delay after a refused attempt, in seconds (pusher-js: 15, doubling to 60).
    #[arg(long, default_value_t = 15)]
    retry_after: u64,
    /// Seconds to wait for everyone to be back before giving up.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

/// What every connection task adds to.
#[derive(Default)]
struct Counts {
    /// Connections subscribed in the current round (0: before the restart, 1: after).
    subscribed: [AtomicU64; 2],
    attempts: AtomicU64,
    refused: AtomicU64,
    member_added: AtomicU64,
    member_removed: AtomicU64,
    /// When the first and the last connection were subscribed again (µs since the epoch):
    /// the storm itself, once pusher-js's retry timers bring everyone back.
    first_back: AtomicU64,
    last_back: AtomicU64,
}

pub async fn run(t: Target, a: Args) {
    match storm(t, a).await {
        Ok(v) => report::emit(v),
        Err(e) => {
            println!("restart-storm: failed: {e}");
            report::emit(json!({"scenario": "restart-storm", "error": e}));
        }
    }
}

/// Connects and subscribes connection `i` (presence for every `presence_every`-th).
async fn join(t: &Target, i: usize, a: &Args) -> Result<RawWs, String> {
    let (mut ws, sid) = RawWs::connect(t, None).await?;
    let (channel, data) = if i.is_multiple_of(a.presence_every.max(1)) {
        let channel = format!("presence-storm-{}", i % a.channels.max(1));
        let data = json!({"user_id": format!("u{i}")}).to_string();
        let auth = t.channel_auth(&sid, &channel, Some(&data));
        let msg = json!({"event": "pusher:subscribe",
            "data": {"channel": channel, "auth": auth, "channel_data": data}});
        (channel, msg)
    } else {
        let channel = format!("storm-{}", i % a.channels.max(1));
        let msg = json!({"event": "pusher:subscribe", "data": {"channel": channel}});
        (channel, msg)
    };
    ws.send_text(&data.to_string()).await?;
    loop {
        let m = ws.next_json().await?;
        if ws_client::subscribed(&m, &channel)? {
            return Ok(ws);
        }
    }
}

/// One connection for the whole scenario: join, count presence events until the server
/// closes it, then come back as pusher-js does.
async fn connection(t: Target, i: usize, a: Arc<Args>, counts: Arc<Counts>, start: Arc<Semaphore>) {
    let mut round = 0usize;
    let mut delay = Duration::from_secs(a.retry_after);
    loop {
        let permit = if round == 0 {
            start.clone().acquire_owned().await.ok()
        } else {
            None
        };
        counts.attempts.fetch_add(1, Ordering::Relaxed);
        let mut ws = match join(&t, i, &a).await {
            Ok(ws) => ws,
            Err(_) if round > 0 => {
                // Refused or cut while the server restarts: the ws loop's timeout runs out.
                counts.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
                continue;
            }
            Err(_) => return,
        };
        drop(permit);
        if let Some(n) = counts.subscribed.get(round.min(1)) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        if round > 0 {
            let now = now_micros();
            let _ =
                counts
                    .first_back
                    .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            counts.last_back.fetch_max(now, Ordering::Relaxed);
        }
        let c = counts.clone();
        let _ = ws
            .read_messages(|text| {
                if find(text, b"pusher_internal:member_added").is_some() {
                    c.member_added.fetch_add(1, Ordering::Relaxed);
                } else if find(text, b"pusher_internal:member_removed").is_some() {
                    c.member_removed.fetch_add(1, Ordering::Relaxed);
                }
                true
            })
            .await;
        // Closed (4200 when the server stops): pusher-js reconnects at once.
        round += 1;
        delay = Duration::from_secs(a.retry_after);
    }
}

async fn wait_for(n: &AtomicU64, want: u64, until: Instant) -> bool {
    while n.load(Ordering::Relaxed) < want {
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn storm(t: Target, a: Args) -> Result<Value, String> {
    let t = match a.storm_port {
        Some(p) => t.on_port(p),
        None => t,
    };
    let n = a.connections as u64;
    let a = Arc::new(a);
    let counts = Arc::new(Counts::default());
    let start = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let mut tasks = Vec::with_capacity(a.connections);
    for i in 0..a.connections {
        tasks.push(tokio::spawn(connection(
            t.clone(),
            i,
            a.clone(),
            counts.clone(),
            start.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    if !wait_for(&counts.subscribed[0], n, deadline).await {
        return Err(format!(
            "only {} of {n} connections subscribed before the restart",
            counts.subscribed[0].load(Ordering::Relaxed)
        ));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let added_before = counts.member_added.load(Ordering::Relaxed);
    let removed_before = counts.member_removed.load(Ordering::Relaxed);
    let attempts_before = counts.attempts.load(Ordering::Relaxed);
    println!("restart-storm: {n} connections subscribed; restarting the server");

    let restarted_at = Instant::now();
    let (back_tx, back_rx) = watch::channel(None::<Instant>);
    let cmd = a.restart_cmd.clone();
    let restarting = tokio::spawn(async move {
        let status = tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .status()
        })
        .await;
        let _ = back_tx.send(Some(Instant::now()));
        match status {
            Ok(Ok(s)) if s.success() => Ok(()),
            other => Err(format!("the restart command failed: {other:?}")),
        }
    });
    // The new server's memory from the moment it is back.
    let mut back = back_rx.clone();
    let _ = back.wait_for(Option::is_some).await;
    restarting.await.map_err(|e| e.to_string())??;
    let peak = proc_stats::RssPeak::start(Proc::File(a.pid_file.clone()));
    let all_back = wait_for(&counts.subscribed[1], n, deadline).await;
    let done_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_peak = peak.peak();
    drop(peak);
    let server_back = (*back_rx.borrow()).unwrap_or(restarted_at);
    let again = counts.subscribed[1].load(Ordering::Relaxed);
    let total = done_at.duration_since(restarted_at).as_secs_f64();
    let after_back = done_at.duration_since(server_back).as_secs_f64();
    let added = counts.member_added.load(Ordering::Relaxed) - added_before;
    let removed = counts.member_removed.load(Ordering::Relaxed) - removed_before;
    let attempts = counts.attempts.load(Ordering::Relaxed) - attempts_before;
    let refused = counts.refused.load(Ordering::Relaxed);
    let burst = counts
        .last_back
        .load(Ordering::Relaxed)
        .saturating_sub(counts.first_back.load(Ordering::Relaxed)) as f64
        / 1e6;
    for task in &tasks {
        task.abort();
    }
    println!(
        "restart-storm: {again} of {n} subscribed again {total:.2} s after the restart began ({after_back:.2} s after the server was back; first to last back {burst:.2} s); {attempts} connect attempts, {refused} refused"
    );
    println!(
        "restart-storm: presence events received: {added} member_added, {removed} member_removed; restarted server's peak RSS {:.1} MB",
        rss_peak.unwrap_or(0) as f64 / 1e6
    );
    Ok(json!({
        "scenario": "restart-storm",
        "connections": n,
        "presence_members": a.connections.div_ceil(a.presence_every.max(1)),
        "all_back": all_back,
        "subscribed_again": again,
        "seconds_from_restart": total,
        "seconds_from_server_back": after_back,
        "burst_seconds": burst,
        "restart_seconds": server_back.duration_since(restarted_at).as_secs_f64(),
        "connect_attempts": attempts,
        "refused_attempts": refused,
        "member_added": added,
        "member_removed": removed,
        "server_rss_peak": rss_peak,
    }))
}
