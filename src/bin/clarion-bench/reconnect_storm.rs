//! `reconnect-storm`: N opted-in subscribers lose their connections at once and all come back,
//! each resubscribing from its last position (docs/recovery.md). Measured: how long until every
//! one has its `clarion:recovery` marker, how many recovered, whether any recovered subscriber
//! missed or repeated an event, and what the storm cost the node that took it (CPU, RSS).
//!
//! Two ways to lose the connections:
//! * `--mode drop` (one node, memory history): the bench closes every socket itself; the server
//!   keeps running, so its history survives (a restart would lose it, by design).
//! * `--mode restart` (a cluster, Redis history): the subscribers sit on the node at
//!   `--also-port`, and `--restart-cmd` stops and restarts that node (the bench waits for the
//!   command, which must return once the node answers again and has written its new PID to
//!   `--pid-file`). Its clients come back to it (`--reconnect-to same`) or to the first node
//!   (`other`). Events keep being published through the first node meanwhile.
//!
//! In both, `--missed` events per channel are published while everyone is away, and
//! `--live-rate` events/s during the storm itself, so replay and live delivery meet.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::http_client::ApiClient;
use crate::proc_stats::{self, Proc, Watched};
use crate::publish;
use crate::recovering::{self, Control, Outcome, Shared, Tracker};
use crate::report;
use crate::target::{now_micros, Target};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The bench drops its sockets; the server keeps running.
    Drop,
    /// The subscribers' node is restarted by `--restart-cmd`.
    Restart,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconnectTo {
    /// The node the subscribers were on (restarted, in restart mode).
    Same,
    /// The first node (`--port`).
    Other,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    #[arg(long, default_value_t = 100)]
    channels: usize,
    /// Channel names: this prefix and a number (must match the app's recovery pattern).
    #[arg(long, default_value = "recorded-storm-")]
    channel_prefix: String,
    /// Connects (handshake and subscribe) in flight at once, initially and in the storm.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Events per channel published before the connections go, so each has a position.
    #[arg(long, default_value_t = 5)]
    before: usize,
    /// Events per channel published while everyone is away (what the storm replays).
    #[arg(long, default_value_t = 20)]
    missed: usize,
    /// Events per second (all channels) published during the storm.
    #[arg(long, default_value_t = 100.0)]
    live_rate: f64,
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// HTTP connections publishing the `--before` and `--missed` events.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    #[arg(long, value_enum, default_value = "drop")]
    mode: Mode,
    /// Restart mode: the node the subscribers connect to, which is restarted.
    #[arg(long)]
    also_port: Option<u16>,
    /// Restart mode: a shell command that restarts the `--also-port` node and returns once it
    /// answers again.
    #[arg(long)]
    restart_cmd: Option<String>,
    /// Restart mode: the file holding the restarted node's PID (re-read after the restart).
    #[arg(long)]
    pid_file: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value = "same")]
    reconnect_to: ReconnectTo,
    /// Seconds to wait for every marker before giving up.
    #[arg(long, default_value_t = 120)]
    storm_timeout: u64,
}

pub async fn run(t: Target, a: Args, pid: Option<u32>, watched: Vec<Watched>) {
    match storm(t, a, pid, watched).await {
        Ok(v) => report::emit(v),
        Err(e) => {
            println!("reconnect-storm: failed: {e}");
            report::emit(json!({"scenario": "reconnect-storm", "error": e}));
        }
    }
}

/// Waits until `done()` or the deadline; returns whether `done()` held.
async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Runs the restart command to completion (on a blocking thread: it waits for a node to stop
/// and start).
async fn restart(cmd: String) -> Result<(), String> {
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .status()
            .map_err(|e| format!("{cmd}: {e}"))
    })
    .await
    .map_err(|e| e.to_string())??;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the restart command failed: {status}"))
    }
}

async fn storm(
    t: Target,
    a: Args,
    pid: Option<u32>,
    watched: Vec<Watched>,
) -> Result<Value, String> {
    let n = a.subscribers;
    let channels: Vec<String> = (0..a.channels.max(1))
        .map(|c| format!("{}{c}", a.channel_prefix))
        .collect();
    let mut nodes = vec![t.clone()];
    if let Some(p) = a.also_port {
        nodes.push(t.on_port(p));
    }
    let (home, storm_node) = match a.mode {
        Mode::Drop => (0, 0),
        Mode::Restart => {
            if a.also_port.is_none() || a.restart_cmd.is_none() {
                return Err("--mode restart needs --also-port and --restart-cmd".into());
            }
            (
                1,
                if a.reconnect_to == ReconnectTo::Same {
                    1
                } else {
                    0
                },
            )
        }
    };
    // The node that takes the storm, and every process whose CPU the storm moves.
    let storm_proc = match (storm_node, &a.pid_file) {
        (1, Some(f)) => Some(Proc::File(f.clone())),
        (1, None) => None,
        _ => pid.map(Proc::Pid),
    };
    let mut all_procs = watched;
    if let Some(p) = pid {
        all_procs.insert(
            0,
            Watched {
                name: "node1".into(),
                proc: Proc::Pid(p),
            },
        );
    }
    if let Some(f) = &a.pid_file {
        all_procs.insert(
            1.min(all_procs.len()),
            Watched {
                name: "node2".into(),
                proc: Proc::File(f.clone()),
            },
        );
    }

    // Subscribe everyone (from no position: learn the head).
    let nodes = Arc::new(nodes);
    let shared = Arc::new(Shared::new(n));
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let (control, rx) = watch::channel(Control {
        gen: 0,
        up: true,
        node: home,
        stop: false,
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let channel = channels
                .get(i % channels.len())
                .cloned()
                .unwrap_or_default();
            tokio::spawn(recovering::run(
                i,
                nodes.clone(),
                channel,
                rx.clone(),
                shared.clone(),
                sem.clone(),
            ))
        })
        .collect();
    let settled = |s: &Shared| Shared::get(&s.subscribes) + Shared::get(&s.subscribe_failures);
    wait_until(Duration::from_secs(300), || settled(&shared) >= n as u64).await;
    let joined = Shared::get(&shared.subscribes);
    println!(
        "reconnect-storm: {joined} of {n} subscribed on {} channels in {:.2}s",
        channels.len(),
        started.elapsed().as_secs_f64()
    );
    if joined == 0 {
        return Err(first_error(&shared).unwrap_or_else(|| "nobody subscribed".into()));
    }

    // Positions: a few events on every channel, delivered to everyone.
    let before = publish::each_channel(&t, &channels, a.before, a.publishers, a.payload).await;
    let per_sub = joined * before.ok / channels.len() as u64;
    let all_in = wait_until(Duration::from_secs(10), || {
        Shared::get(&shared.events) >= per_sub
    })
    .await;
    println!(
        "reconnect-storm: {} events published before the cut ({} failed), {} of ~{per_sub} delivered{}",
        before.ok,
        before.failed,
        Shared::get(&shared.events),
        if all_in { "" } else { " (not all)" }
    );

    // The cut.
    let down0 = Shared::get(&shared.down);
    let restart_started = Instant::now();
    let restarting = match a.mode {
        Mode::Drop => {
            control.send_modify(|c| c.up = false);
            None
        }
        Mode::Restart => a.restart_cmd.clone().map(|cmd| tokio::spawn(restart(cmd))),
    };
    let all_down = wait_until(Duration::from_secs(60), || {
        Shared::get(&shared.down) - down0 >= joined
    })
    .await;
    let cut = Shared::get(&shared.down) - down0;
    println!(
        "reconnect-storm: {cut} connections down{}",
        if all_down { "" } else { " (not all)" }
    );

    // Meanwhile: the events everyone will have to recover.
    let missed = publish::each_channel(&t, &channels, a.missed, a.publishers, a.payload).await;
    println!(
        "reconnect-storm: {} events published while away ({} failed)",
        missed.ok, missed.failed
    );
    let mut restart_secs = None;
    if let Some(r) = restarting {
        r.await.map_err(|e| e.to_string())??;
        let secs = restart_started.elapsed().as_secs_f64();
        println!("reconnect-storm: node restarted ({secs:.2}s after the restart command started)");
        restart_secs = Some(secs);
    }

    // The storm.
    let markers0 = Shared::get(&shared.markers);
    let failures0 = Shared::get(&shared.subscribe_failures);
    let peak = storm_proc.clone().map(proc_stats::RssPeak::start);
    let rss_before = storm_proc
        .as_ref()
        .and_then(Proc::pid)
        .and_then(proc_stats::rss_bytes);
    let cpu0 = proc_stats::mark(&all_procs);
    let live = publish::Live::start(&t, &channels, a.live_rate, a.payload);
    let go = now_micros();
    shared.go_micros.store(go, Ordering::Relaxed);
    control.send_modify(|c| {
        c.gen += 1;
        c.up = true;
        c.node = storm_node;
    });
    let complete = wait_until(Duration::from_secs(a.storm_timeout), || {
        Shared::get(&shared.markers) - markers0 + Shared::get(&shared.subscribe_failures)
            - failures0
            >= joined
    })
    .await;
    let cpu = cpu0.since(&proc_stats::mark(&all_procs));
    let storm_end = Shared::get(&shared.last_marker_micros);
    let storm_secs = storm_end.saturating_sub(go) as f64 / 1e6;
    let rss_peak = peak.as_ref().and_then(proc_stats::RssPeak::peak);
    drop(peak);
    let hwm = storm_proc
        .as_ref()
        .and_then(Proc::pid)
        .and_then(proc_stats::peak_rss_bytes);
    let live = live.stop().await;

    // Stragglers: wait until every subscriber holds its channel's top.
    let mut api = ApiClient::connect(&t).await?;
    let mut tops = Vec::with_capacity(channels.len());
    for c in &channels {
        tops.push(api.history_head(c).await?);
    }
    let caught_up = wait_until(Duration::from_secs(5), || {
        shared.last.iter().enumerate().all(|(i, l)| {
            let top = tops.get(i % tops.len()).map(|t| t.1).unwrap_or(0);
            l.load(Ordering::Relaxed) >= top
        })
    })
    .await;
    control.send_modify(|c| c.stop = true);
    let mut trackers = Vec::with_capacity(n);
    for (i, task) in tasks.into_iter().enumerate() {
        if let Ok(tr) = task.await {
            trackers.push((i, tr));
        }
    }
    let markers = Shared::get(&shared.markers) - markers0;
    println!(
        "reconnect-storm: {markers} of {joined} markers in {storm_secs:.2}s{}; {} recovered, {} not; {} events replayed",
        if complete { "" } else { " (timed out)" },
        Shared::get(&shared.recovered),
        Shared::get(&shared.not_recovered),
        Shared::get(&shared.replayed),
    );
    let checks = Checks::of(&trackers, &tops);
    println!(
        "reconnect-storm: recovered subscribers: {} missing, {} duplicate events ({} subscribers affected); others: {} missing, {} duplicate",
        checks.recovered_missing,
        checks.recovered_duplicates,
        checks.recovered_affected,
        checks.other_missing,
        checks.other_duplicates
    );
    let since_go = shared.since_go.merged();
    let since_subscribe = shared.since_subscribe.merged();
    println!(
        "reconnect-storm: storm start -> marker {}",
        report::latency_line(&since_go)
    );
    println!(
        "reconnect-storm: resubscribe -> marker {}",
        report::latency_line(&since_subscribe)
    );
    let storm_name = if storm_node == 1 { "node2" } else { "node1" };
    let storm_cpu = cpu
        .iter()
        .find(|(name, _)| name == storm_name)
        .and_then(|(_, c)| *c);
    if let Some(c) = storm_cpu {
        println!(
            "reconnect-storm: the storm node spent {c:.2} CPU-s ({:.1} µs per resubscribe); peak RSS {:.1} MB",
            c / joined as f64 * 1e6,
            rss_peak.unwrap_or(0) as f64 / 1e6
        );
    }
    let ends = shared.ends.lock().map(|m| m.clone()).unwrap_or_default();
    Ok(json!({
        "scenario": "reconnect-storm",
        "mode": format!("{:?}", a.mode).to_lowercase(),
        "reconnect_to": format!("{:?}", a.reconnect_to).to_lowercase(),
        "subscribers_requested": n,
        "subscribers": joined,
        "channels": channels.len(),
        "published_before": before.ok,
        "published_missed": missed.ok,
        "published_live": live.ok,
        "publish_errors": before.failed + missed.failed + live.failed,
        "connections_cut": cut,
        "restart_seconds": restart_secs,
        "markers": markers,
        "complete": complete,
        "storm_seconds": storm_secs,
        "resubscribes_per_second": if storm_secs > 0.0 { markers as f64 / storm_secs } else { 0.0 },
        "recovered": Shared::get(&shared.recovered),
        "not_recovered": Shared::get(&shared.not_recovered),
        "not_recovered_reasons": checks.reasons,
        "storm_failures": Shared::get(&shared.subscribe_failures) - failures0,
        "replayed": Shared::get(&shared.replayed),
        "recovered_missing": checks.recovered_missing,
        "recovered_duplicates": checks.recovered_duplicates,
        "recovered_subscribers_with_gaps": checks.recovered_affected,
        "other_missing": checks.other_missing,
        "other_duplicates": checks.other_duplicates,
        "epoch_jumps": checks.epoch_jumps,
        "unstamped": checks.unstamped,
        "caught_up": caught_up,
        "since_storm_start": report::latency_json(&since_go),
        "resubscribe_to_marker": report::latency_json(&since_subscribe),
        "storm_node_cpu_seconds": storm_cpu,
        "storm_node_cpu_us_per_resubscribe": storm_cpu.filter(|_| joined > 0).map(|c| c / joined as f64 * 1e6),
        "storm_node_rss_before": rss_before,
        "storm_node_rss_peak": rss_peak,
        "storm_node_vmhwm": hwm,
        "cpu_seconds_by_process": proc_stats::cpu_json(&cpu),
        "connection_ends": ends,
        "first_error": first_error(&shared),
    }))
}

fn first_error(shared: &Shared) -> Option<String> {
    shared.first_error.lock().ok().and_then(|e| e.clone())
}

/// What the subscribers' own checks found, split by whether their last resubscribe recovered.
struct Checks {
    recovered_missing: u64,
    recovered_duplicates: u64,
    recovered_affected: u64,
    other_missing: u64,
    other_duplicates: u64,
    epoch_jumps: u64,
    unstamped: u64,
    reasons: Value,
}

impl Checks {
    /// Adds to each subscriber's gaps the events it had not received by the end (its last
    /// offset below the channel's top, in the same epoch).
    fn of(trackers: &[(usize, Tracker)], tops: &[(String, u64)]) -> Checks {
        let mut c = Checks {
            recovered_missing: 0,
            recovered_duplicates: 0,
            recovered_affected: 0,
            other_missing: 0,
            other_duplicates: 0,
            epoch_jumps: 0,
            unstamped: 0,
            reasons: json!({}),
        };
        for (i, tr) in trackers {
            if tr.epoch.is_none() {
                continue; // never subscribed
            }
            let tail = match tops.get(i % tops.len().max(1)) {
                Some((epoch, top)) if tr.epoch.as_deref() == Some(epoch.as_str()) => {
                    top.saturating_sub(tr.last)
                }
                _ => 0,
            };
            let missing = tr.missing + tail;
            c.epoch_jumps += tr.epoch_jumps;
            c.unstamped += tr.unstamped;
            match &tr.outcome {
                Some(Outcome::Recovered { .. }) => {
                    c.recovered_missing += missing;
                    c.recovered_duplicates += tr.duplicates;
                    if missing + tr.duplicates > 0 {
                        c.recovered_affected += 1;
                    }
                }
                other => {
                    c.other_missing += missing;
                    c.other_duplicates += tr.duplicates;
                    let reason = match other {
                        Some(Outcome::Failed { reason }) => reason.as_str(),
                        _ if tr.storm_failed => "reconnect_failed",
                        _ => "no_marker",
                    };
                    let n = c.reasons[reason].as_u64().unwrap_or(0);
                    c.reasons[reason] = json!(n + 1);
                }
            }
        }
        c
    }
}
