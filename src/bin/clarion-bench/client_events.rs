//! `client-events`: whispers between pairs of connections on private channels.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::report::{self, SharedHistogram};
use crate::target::{now_micros, Target};
use crate::ws_client;

pub struct ClientEvents {
    pub pairs: usize,
    /// Whispers per second per pair (the server's default limit is 10 per connection).
    pub rate: f64,
    pub duration: Duration,
}

pub async fn run(t: Target, o: ClientEvents) {
    let hist = Arc::new(SharedHistogram::new());
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut failures = 0;
    for i in 0..o.pairs {
        let channel = format!("private-whisper-{i}");
        let pair = async {
            let (mut a, a_id) = ws_client::connect(&t, None).await?;
            let (mut b, b_id) = ws_client::connect(&t, None).await?;
            ws_client::subscribe(
                &mut a,
                &channel,
                Some(t.channel_auth(&a_id, &channel, None)),
                None,
            )
            .await?;
            ws_client::subscribe(
                &mut b,
                &channel,
                Some(t.channel_auth(&b_id, &channel, None)),
                None,
            )
            .await?;
            Ok::<_, String>((a, b))
        };
        let (mut a, mut b) = match pair.await {
            Ok(p) => p,
            Err(e) => {
                failures += 1;
                println!("client-events: pair {i} failed: {e}");
                continue;
            }
        };
        let (hist, received, sent, rejected) = (
            hist.clone(),
            received.clone(),
            sent.clone(),
            rejected.clone(),
        );
        let interval = Duration::from_secs_f64(1.0 / o.rate.max(0.001));
        let count = (o.rate * o.duration.as_secs_f64()).round() as u64;
        tasks.push(tokio::spawn(async move {
            let receiver = tokio::spawn(async move {
                while let Some(Ok(Message::Text(text))) = b.next().await {
                    if let Some(ts) = crate::target::extract_timestamp(text.as_bytes()) {
                        hist.record(i, now_micros().saturating_sub(ts));
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            let mut tick = tokio::time::interval(interval);
            for _ in 0..count {
                tick.tick().await;
                let msg = json!({"event": "client-bench", "channel": channel, "data": {"t": now_micros()}}).to_string();
                if a.send(Message::Text(msg.into())).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            // Anything the sender receives back is an error (a rejection).
            while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout(Duration::from_millis(300), a.next()).await {
                if t.as_str().contains("pusher:error") {
                    rejected.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            receiver.abort();
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let (s, r) = (
        sent.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
    );
    let h = hist.merged();
    println!(
        "client-events: {} pairs ({} failed), {} sent, {} delivered, {} rejected, {:.0} delivered/s",
        o.pairs - failures,
        failures,
        s,
        r,
        rejected.load(Ordering::Relaxed),
        r as f64 / o.duration.as_secs_f64().max(0.001)
    );
    println!("client-events: {}", report::latency_line(&h));
    report::emit(json!({
        "scenario": "client-events",
        "pairs": o.pairs - failures,
        "sent": s,
        "delivered": r,
        "lost": s.saturating_sub(r),
        "rejected": rejected.load(Ordering::Relaxed),
        "delivered_per_second": r as f64 / o.duration.as_secs_f64().max(0.001),
        "latency": report::latency_json(&h),
    }));
}
