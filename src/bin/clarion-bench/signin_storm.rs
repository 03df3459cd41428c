//! `signin-storm`: N connections sign in (`pusher:signin`) with a signed `user_data` that carries
//! a 100-id watchlist (docs/protocol.md §3.8, the app needs `enable_watchlist_events`). The ids
//! are other connections' users, so each sign-in also sends `online` transitions to the
//! connections already watching it: the sign-in path, the statuses at sign-in and the fan-out of
//! transitions are measured together, as they happen when a page full of users reconnects.
//!
//! Reported: sign-ins per second, and the time from sending `pusher:signin` to the statuses
//! frame (the `pusher_internal:watchlist_events` frame every sign-in with a non-empty watchlist
//! gets, told from a transition by naming every watched id); the transitions received; the
//! server's CPU per sign-in. And two checks: transitions that arrived before a connection's
//! statuses frame (§3.8 puts the statuses first), and, once everyone has signed in, watched
//! users a connection still believes offline after applying every frame in order (all of them
//! are online then, so each is a wrong status).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::proc_stats::{self, Watched};
use crate::raw_ws::RawWs;
use crate::report::{self, SharedHistogram};
use crate::target::{find, Target};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 2_000)]
    connections: usize,
    /// Ids in each watchlist (the server keeps at most 100).
    #[arg(long, default_value_t = 100)]
    watchlist: usize,
    /// Sign-ins waiting for their first watchlist frame at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// A second node's port: odd-numbered connections go there (a cluster over Redis).
    #[arg(long)]
    also_port: Option<u16>,
    /// Seconds to keep reading transitions after the last sign-in.
    #[arg(long, default_value_t = 2)]
    settle: u64,
}

/// What the connections count together.
#[derive(Default)]
struct Counts {
    signed_in: AtomicU64,
    failed: AtomicU64,
    /// Watchlist frames after each connection's first (transitions of watched users).
    transitions: AtomicU64,
    online_ids: AtomicU64,
    offline_ids: AtomicU64,
    /// Ids reported online / offline in the statuses frames.
    first_online: AtomicU64,
    first_offline: AtomicU64,
    /// Transition frames that arrived before the connection's statuses frame.
    early: AtomicU64,
    connections_with_early: AtomicU64,
    errors: AtomicU64,
    last_first_frame: AtomicU64,
}

/// The user of connection `i` and the ids it watches: `i+1`, `i+1+stride`, … (mod N), so every
/// user is watched by as many connections as there are ids in a watchlist.
fn user_data(i: usize, n: usize, watchlist: usize) -> String {
    let stride = (n / watchlist.max(1)).max(1);
    let ids: Vec<String> = (0..watchlist)
        .map(|k| format!("u{}", (i + 1 + k * stride) % n.max(1)))
        .collect();
    json!({"id": format!("u{i}"), "user_info": {}, "watchlist": ids}).to_string()
}

/// The distinct ids a connection watches (what its statuses frame must name).
fn watched_ids(user_data: &str) -> HashSet<String> {
    let v: Value = serde_json::from_str(user_data).unwrap_or(Value::Null);
    v["watchlist"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_string))
        .take(100)
        .collect()
}

/// Applies a watchlist frame to a connection's view of its watched users (id → online) and
/// returns how many ids it named online and offline.
fn apply(frame: &Value, view: &mut HashMap<String, bool>) -> (u64, u64) {
    let data: Value = frame["data"]
        .as_str()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null);
    let mut out = (0, 0);
    for e in data["events"].as_array().into_iter().flatten() {
        let online = match e["name"].as_str() {
            Some("online") => true,
            Some("offline") => false,
            _ => continue,
        };
        for id in e["user_ids"].as_array().into_iter().flatten() {
            if let Some(id) = id.as_str() {
                view.insert(id.to_string(), online);
                if online {
                    out.0 += 1;
                } else {
                    out.1 += 1;
                }
            }
        }
    }
    out
}

pub async fn run(t: Target, a: Args, pid: Option<u32>, watched: Vec<Watched>) {
    let n = a.connections;
    // Connect everyone first: the sign-ins are what is timed.
    let connect_sem = Arc::new(Semaphore::new(200));
    let mut connecting = Vec::with_capacity(n);
    for i in 0..n {
        let t = match a.also_port {
            Some(p) if i % 2 == 1 => t.on_port(p),
            _ => t.clone(),
        };
        let sem = connect_sem.clone();
        connecting.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.map_err(|e| e.to_string())?;
            RawWs::connect(&t, None).await
        }));
    }
    let mut conns = Vec::with_capacity(n);
    let mut connect_failures = 0;
    for (i, c) in connecting.into_iter().enumerate() {
        match c.await {
            Ok(Ok((ws, sid))) => conns.push((i, ws, sid)),
            _ => connect_failures += 1,
        }
    }
    println!(
        "signin-storm: {} connected ({connect_failures} failed)",
        conns.len()
    );

    let counts = Arc::new(Counts::default());
    let hist = Arc::new(SharedHistogram::new());
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let (stop, stopped) = watch::channel(false);
    let cpu0 = pid.and_then(proc_stats::cpu_seconds);
    let others0 = proc_stats::mark(&watched);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(conns.len());
    for (i, mut ws, sid) in conns {
        let (t, counts, hist, sem) = (t.clone(), counts.clone(), hist.clone(), sem.clone());
        let mut stopped = stopped.clone();
        let data = user_data(i, n, a.watchlist);
        let watched = watched_ids(&data);
        tasks.push(tokio::spawn(async move {
            let mut view: HashMap<String, bool> = HashMap::new();
            let Ok(permit) = sem.acquire_owned().await else {
                return (i, false, view, watched, None);
            };
            let mut permit = Some(permit);
            let msg = json!({"event": "pusher:signin",
                             "data": {"auth": t.user_auth(&sid, &data), "user_data": data}});
            let t0 = Instant::now();
            if ws.send_text(&msg.to_string()).await.is_err() {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                return (i, false, view, watched, None);
            }
            let (mut statuses_seen, mut early) = (false, 0u64);
            let read = ws.read_messages(|text| {
                if find(text, b"pusher_internal:watchlist_events").is_some() {
                    let v: Value = serde_json::from_slice(text).unwrap_or(Value::Null);
                    let (on, off) = apply(&v, &mut view);
                    // The statuses frame names every watched id; a transition names one.
                    if !statuses_seen && (on + off) as usize == watched.len() {
                        statuses_seen = true;
                        hist.record(i, t0.elapsed().as_micros().max(1) as u64);
                        counts.signed_in.fetch_add(1, Ordering::Relaxed);
                        counts.first_online.fetch_add(on, Ordering::Relaxed);
                        counts.first_offline.fetch_add(off, Ordering::Relaxed);
                        let now = started.elapsed().as_micros() as u64;
                        counts.last_first_frame.fetch_max(now, Ordering::Relaxed);
                        if early > 0 {
                            counts
                                .connections_with_early
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        permit = None;
                    } else {
                        if !statuses_seen {
                            early += 1;
                            counts.early.fetch_add(1, Ordering::Relaxed);
                        }
                        counts.transitions.fetch_add(1, Ordering::Relaxed);
                        counts.online_ids.fetch_add(on, Ordering::Relaxed);
                        counts.offline_ids.fetch_add(off, Ordering::Relaxed);
                    }
                } else if find(text, b"\"pusher:error\"").is_some() {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                }
                true
            });
            let ended = tokio::select! {
                _ = read => true,
                _ = stopped.wait_for(|s| *s) => false,
            };
            if ended && !statuses_seen {
                counts.failed.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
            // The connection stays open until every view is taken: a close would send
            // `offline` to the connections still reading.
            (i, statuses_seen, view, watched, Some(ws))
        }));
    }
    let total = tasks.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while counts.signed_in.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) < total
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = match (cpu0, pid.and_then(proc_stats::cpu_seconds)) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    let others = others0.since(&proc_stats::mark(&watched));
    let signed = counts.signed_in.load(Ordering::Relaxed);
    let secs = counts.last_first_frame.load(Ordering::Relaxed) as f64 / 1e6;
    let rate = if secs > 0.0 {
        signed as f64 / secs
    } else {
        0.0
    };
    tokio::time::sleep(Duration::from_secs(a.settle)).await;
    let _ = stop.send(true);
    let mut views = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(v) = task.await {
            views.push(v);
        }
    }
    // Everyone who got statuses is signed in now: a watched one of them that a connection
    // still sees offline (or never heard of) is a wrong status.
    let online: HashSet<String> = views
        .iter()
        .filter(|v| v.1)
        .map(|v| format!("u{}", v.0))
        .collect();
    let (mut wrong, mut wrong_conns) = (0u64, 0u64);
    for (_, signed, view, watched, _) in &views {
        if !signed {
            continue;
        }
        let w = watched
            .iter()
            .filter(|id| online.contains(*id) && view.get(*id) != Some(&true))
            .count() as u64;
        wrong += w;
        wrong_conns += u64::from(w > 0);
    }
    let h = hist.merged();
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "signin-storm: {signed} signed in ({} failed) in {secs:.2}s: {rate:.0} sign-ins/s",
        get(&counts.failed)
    );
    println!(
        "signin-storm: signin -> statuses frame {}",
        report::latency_line(&h)
    );
    println!(
        "signin-storm: statuses at sign-in: {} online, {} offline; then {} transition frames ({} online, {} offline ids)",
        get(&counts.first_online),
        get(&counts.first_offline),
        get(&counts.transitions),
        get(&counts.online_ids),
        get(&counts.offline_ids)
    );
    println!(
        "signin-storm: {} transitions arrived before their connection's statuses ({} connections); {wrong} watched users seen offline at the end though online ({wrong_conns} connections)",
        get(&counts.early),
        get(&counts.connections_with_early)
    );
    let cpu_per = cpu.filter(|_| signed > 0).map(|c| c / signed as f64 * 1e6);
    if let Some(us) = cpu_per {
        println!("signin-storm: server CPU {us:.0} µs per sign-in");
    }
    report::emit(json!({
        "scenario": "signin-storm",
        "connections": n,
        "connect_failures": connect_failures,
        "watchlist": a.watchlist,
        "nodes": if a.also_port.is_some() { 2 } else { 1 },
        "signed_in": signed,
        "failed": get(&counts.failed),
        "errors": get(&counts.errors),
        "seconds": secs,
        "signins_per_second": rate,
        "latency": report::latency_json(&h),
        "first_online_ids": get(&counts.first_online),
        "first_offline_ids": get(&counts.first_offline),
        "transition_frames": get(&counts.transitions),
        "transition_online_ids": get(&counts.online_ids),
        "transition_offline_ids": get(&counts.offline_ids),
        "transitions_before_statuses": get(&counts.early),
        "connections_with_transitions_before_statuses": get(&counts.connections_with_early),
        "wrong_final_statuses": wrong,
        "connections_with_wrong_final_statuses": wrong_conns,
        "server_cpu_seconds": cpu,
        "server_cpu_us_per_signin": cpu_per,
        "watched_cpu_seconds": proc_stats::cpu_json(&others),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_is_watched_by_as_many_as_a_watchlist_holds() {
        let n = 2000;
        let mut watched_by = vec![0usize; n];
        for i in 0..n {
            let v: Value = serde_json::from_str(&user_data(i, n, 100)).unwrap_or_default();
            let ids = v["watchlist"].as_array().cloned().unwrap_or_default();
            assert_eq!(ids.len(), 100);
            for id in ids {
                let k: usize = id.as_str().unwrap_or("u0")[1..].parse().unwrap_or(0);
                assert_ne!(k, i, "nobody watches themselves");
                watched_by[k] += 1;
            }
        }
        assert!(watched_by.iter().all(|&w| w == 100));
    }
}
