//! `presence`: members join and leave a presence channel with signed auth; an observer
//! measures join → member_added and leave → member_removed latency; then a join-rate phase.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::report;
use crate::target::Target;
use crate::ws_client::{self, Ws};

pub struct Presence {
    pub samples: usize,
    pub joiners: usize,
    pub concurrency: usize,
}

const CHANNEL: &str = "presence-bench";

async fn join(t: &Target, ws: &mut Ws, socket_id: &str, user: &str) -> Result<(), String> {
    let data = json!({"user_id": user, "user_info": {"name": user}}).to_string();
    let auth = t.channel_auth(socket_id, CHANNEL, Some(&data));
    ws_client::subscribe(ws, CHANNEL, Some(auth), Some(data)).await
}

/// Waits on the observer for `event` about `user`.
async fn wait_for(observer: &mut Ws, event: &str, user: &str) -> Result<(), String> {
    loop {
        let m = ws_client::next_json(observer).await?;
        if m["event"] == event {
            let data: serde_json::Value = serde_json::from_str(m["data"].as_str().unwrap_or("{}"))
                .map_err(|e| e.to_string())?;
            if data["user_id"] == user {
                return Ok(());
            }
        }
    }
}

pub async fn run(t: Target, o: Presence) {
    let result = measure(&t, &o).await;
    match result {
        Ok(v) => report::emit(v),
        Err(e) => {
            println!("presence: failed: {e}");
            report::emit(json!({"scenario": "presence", "error": e}));
        }
    }
}

async fn measure(t: &Target, o: &Presence) -> Result<serde_json::Value, String> {
    let (mut observer, obs_id) = ws_client::connect(t, None).await?;
    join(t, &mut observer, &obs_id, "observer").await?;
    let mut added = report::new_histogram();
    let mut removed = report::new_histogram();
    for i in 0..o.samples {
        let user = format!("sample-{i}");
        let (mut ws, sid) = ws_client::connect(t, None).await?;
        let t0 = Instant::now();
        join(t, &mut ws, &sid, &user).await?;
        wait_for(&mut observer, "pusher_internal:member_added", &user).await?;
        added.saturating_record(t0.elapsed().as_micros().max(1) as u64);
        let t1 = Instant::now();
        let _ = ws.send(Message::Close(None)).await;
        drop(ws);
        wait_for(&mut observer, "pusher_internal:member_removed", &user).await?;
        removed.saturating_record(t1.elapsed().as_micros().max(1) as u64);
    }
    println!(
        "presence: join -> member_added {}",
        report::latency_line(&added)
    );
    println!(
        "presence: leave -> member_removed {}",
        report::latency_line(&removed)
    );

    // Join rate: many members connect and join at once.
    let sem = Arc::new(Semaphore::new(o.concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..o.joiners {
        let t = t.clone();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.map_err(|e| e.to_string())?;
            let (mut ws, sid) = ws_client::connect(&t, None).await?;
            join(&t, &mut ws, &sid, &format!("joiner-{i}")).await?;
            Ok::<Ws, String>(ws)
        }));
    }
    let mut held = Vec::new();
    let mut failures = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(ws)) => held.push(ws),
            _ => failures += 1,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = held.len() as f64 / secs;
    println!(
        "presence: {} members joined in {:.2}s ({:.0} joins/s, {} failed)",
        held.len(),
        secs,
        rate,
        failures
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(json!({
        "scenario": "presence",
        "member_added": report::latency_json(&added),
        "member_removed": report::latency_json(&removed),
        "joins": o.joiners,
        "join_failures": failures,
        "join_rate": rate,
    }))
}
