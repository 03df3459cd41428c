//! The steady parts of the soak's load: long-lived receivers, connections that come and go,
//! HTTP publishers (single and batch triggers) and whispering pairs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

use super::conn::{follow, join, when_set, ChannelSeq, Ctx, Open};
use super::seq::Tracker;
use crate::http_client::ApiClient;

/// The channels HTTP triggers go to: every other one private (signed subscriptions).
pub fn channels(n: usize) -> Vec<Arc<ChannelSeq>> {
    (0..n.max(1))
        .map(|i| {
            let name = if i % 2 == 0 {
                format!("soak-{i}")
            } else {
                format!("private-soak-{i}")
            };
            ChannelSeq::new(name)
        })
        .collect()
}

/// A receiver for the whole run on `ch`. `ready` counts it once subscribed; `opening` limits
/// the joins in flight while the receivers are opened.
pub async fn base(
    ctx: Arc<Ctx>,
    ch: Arc<ChannelSeq>,
    ready: Arc<AtomicU64>,
    opening: Arc<Semaphore>,
) {
    let permit = opening.acquire_owned().await;
    let Ok(mut ws) = join(&ctx, &ch.name, None).await else {
        return;
    };
    drop(permit);
    let _open = Open::new(&ctx.counts.connections);
    ready.fetch_add(1, Ordering::Relaxed);
    let tr = Tracker::new(ch.issued.load(Ordering::Relaxed) + 1, ctx.skip_every);
    follow(&ctx, &mut ws, &ch, tr, when_set(ctx.drain.clone())).await;
}

/// A connection slot that joins a random channel, stays `life` seconds (random in the range),
/// leaves and joins again, until the load stops.
pub async fn churner(ctx: Arc<Ctx>, chans: Arc<Vec<Arc<ChannelSeq>>>, life: (u64, u64)) {
    while !ctx.stopped() {
        let (ch, secs) = {
            let mut rng = rand::rng();
            let ch = chans[rng.random_range(0..chans.len())].clone();
            (ch, rng.random_range(life.0..=life.1.max(life.0)))
        };
        let Ok(mut ws) = join(&ctx, &ch.name, None).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let _open = Open::new(&ctx.counts.connections);
        let tr = Tracker::new(ch.issued.load(Ordering::Relaxed) + 1, ctx.skip_every);
        let drain = ctx.drain.clone();
        let leave = async move {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(secs)) => {}
                () = when_set(drain) => {}
            }
        };
        follow(&ctx, &mut ws, &ch, tr, leave).await;
    }
}

/// What one publisher sends.
pub struct Publishing {
    /// Events per second from this publisher.
    pub rate: f64,
    /// Every `batch_every`-th request is a `batch_events` of `batch_size` events (0: never).
    pub batch_every: u64,
    pub batch_size: usize,
    pub payload: usize,
}

/// Publishes numbered events to its own channels (no other publisher touches them, so each
/// channel's numbers go out in order) until the load stops.
pub async fn publisher(ctx: Arc<Ctx>, mine: Vec<Arc<ChannelSeq>>, p: Publishing) {
    if mine.is_empty() {
        return;
    }
    let batch = p.batch_size.clamp(1, mine.len());
    let per_tick = if p.batch_every > 0 {
        ((p.batch_every - 1) as f64 + batch as f64) / p.batch_every as f64
    } else {
        1.0
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(per_tick / p.rate.max(0.001)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let pad = "x".repeat(p.payload);
    let mut api = None;
    let (mut n, mut cursor) = (0u64, 0usize);
    while !ctx.stopped() {
        tick.tick().await;
        n += 1;
        let k = if p.batch_every > 0 && n.is_multiple_of(p.batch_every) {
            batch
        } else {
            1
        };
        let chosen: Vec<&Arc<ChannelSeq>> =
            (0..k).map(|j| &mine[(cursor + j) % mine.len()]).collect();
        cursor = (cursor + k) % mine.len();
        // A failed publish is retried under the same number next time (a publish that did
        // reach the receivers before failing then shows as a duplicate, not as a loss).
        let events: Vec<(String, &str, String)> = chosen
            .iter()
            .map(|ch| {
                let s = ch.acked.load(Ordering::Relaxed) + 1;
                ch.issued.store(s, Ordering::Relaxed);
                let data = json!({"seq": s, "pad": pad}).to_string();
                (ch.name.clone(), "soak", data)
            })
            .collect();
        if api.is_none() {
            api = ApiClient::connect(&ctx.t).await.ok();
        }
        let Some(client) = api.as_mut() else {
            ctx.counts.trigger_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let status = match events.as_slice() {
            [(c, e, d)] => client.trigger(c, e, d).await.map(|r| r.0),
            many => client.batch(many).await,
        };
        match status {
            Ok(200) => {
                for ch in &chosen {
                    ch.acked.fetch_add(1, Ordering::Relaxed);
                }
                let sent = &ctx.counts.events_sent;
                sent.fetch_add(k as u64, Ordering::Relaxed);
            }
            Ok(_) => {
                ctx.counts.trigger_errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                ctx.counts.trigger_errors.fetch_add(1, Ordering::Relaxed);
                api = None;
            }
        }
    }
}

/// Two connections on a private channel, one whispering numbered client events to the other
/// `rate` times a second until the load stops; the other checks them.
pub async fn pair(ctx: Arc<Ctx>, i: usize, rate: f64) -> Option<tokio::task::JoinHandle<()>> {
    let seq = ChannelSeq::new(format!("private-whisper-{i}"));
    let mut sender = join(&ctx, &seq.name, None).await.ok()?;
    let mut receiver = join(&ctx, &seq.name, None).await.ok()?;
    let (c, s) = (ctx.clone(), seq.clone());
    let reading = tokio::spawn(async move {
        let _open = Open::new(&c.counts.connections);
        let tr = Tracker::new(1, c.skip_every);
        follow(&c, &mut receiver, &s, tr, when_set(c.drain.clone())).await;
    });
    Some(tokio::spawn(async move {
        let _open = Open::new(&ctx.counts.connections);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut n = 0u64;
        while !ctx.stopped() {
            tick.tick().await;
            n += 1;
            seq.issued.store(n, Ordering::Relaxed);
            let msg = json!({"event": "client-soak", "channel": seq.name, "data": {"seq": n}});
            if sender.send_text(&msg.to_string()).await.is_err() {
                ctx.counts.dropped.fetch_add(1, Ordering::Relaxed);
                break;
            }
            seq.acked.store(n, Ordering::Relaxed);
            ctx.counts
                .client_events_sent
                .fetch_add(1, Ordering::Relaxed);
        }
        let _ = reading.await;
    }))
}
