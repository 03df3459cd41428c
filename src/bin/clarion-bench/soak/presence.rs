//! Presence churn: one watching member per presence channel for the whole run, and members
//! joining and leaving around it. Every join must reach the watcher as `member_added` and every
//! leave as `member_removed` (each churning member has a user id of its own, so one join is one
//! event).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;

use super::conn::{is_ping, join, when_set, Ctx, Open, PONG};
use crate::target::find;

/// The presence channel number `i`.
pub fn channel(i: usize) -> String {
    format!("presence-soak-{i}")
}

/// The watcher of channel `i`: counts the churning members' arrivals and departures until
/// `done`. `ready` counts it once it is a member.
pub async fn watcher(ctx: Arc<Ctx>, i: usize, ready: Arc<AtomicU64>, done: watch::Receiver<bool>) {
    let user = format!("watcher-{i}");
    let Ok(mut ws) = join(&ctx, &channel(i), Some(&user)).await else {
        return;
    };
    let _open = Open::new(&ctx.counts.connections);
    ready.fetch_add(1, Ordering::Relaxed);
    let done = when_set(done);
    tokio::pin!(done);
    loop {
        let mut pong = false;
        let c = &ctx.counts;
        let read = tokio::select! {
            r = ws.read_messages(|text| {
                if is_ping(text) {
                    pong = true;
                    return false;
                }
                // Churners' ids start with "churn-"; another watcher's never appear here.
                if find(text, br#"churn-"#).is_some() {
                    if find(text, b"pusher_internal:member_added").is_some() {
                        c.member_added.fetch_add(1, Ordering::Relaxed);
                    } else if find(text, b"pusher_internal:member_removed").is_some() {
                        c.member_removed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                true
            }) => r,
            () = &mut done => return,
        };
        if read.is_err() {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if pong && ws.send_text(PONG).await.is_err() {
            return;
        }
    }
}

/// A member slot: joins one of `channels` presence channels as a new user, stays `life`
/// seconds (random in the range), leaves by closing the connection, and again until the load
/// stops.
pub async fn churner(ctx: Arc<Ctx>, channels: usize, life: (u64, u64), next_user: Arc<AtomicU64>) {
    while !ctx.stopped() {
        let n = next_user.fetch_add(1, Ordering::Relaxed);
        let secs = rand::rng().random_range(life.0..=life.1.max(life.0));
        let ch = channel(n as usize % channels.max(1));
        let Ok(mut ws) = join(&ctx, &ch, Some(&format!("churn-{n}"))).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let open = Open::new(&ctx.counts.connections);
        ctx.counts.presence_joins.fetch_add(1, Ordering::Relaxed);
        let stop = when_set(ctx.stop.clone());
        let stay = tokio::time::sleep(Duration::from_secs(secs));
        tokio::pin!(stop, stay);
        // Reads (and drops) the other members' events while it stays, so that its socket
        // closes cleanly rather than with unread data.
        loop {
            tokio::select! {
                r = ws.read_messages(|_| true) => if r.is_err() { break },
                () = &mut stay => break,
                () = &mut stop => break,
            }
        }
        drop(ws);
        drop(open);
        ctx.counts.presence_leaves.fetch_add(1, Ordering::Relaxed);
    }
}
