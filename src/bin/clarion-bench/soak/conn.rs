//! What every soak connection shares: the run's counters, the stop signals, the numbered
//! channels, and `follow`, the one reading loop of every receiver that checks its numbers.

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::seq::{extract_seq, Seen, Tracker};
use crate::raw_ws::RawWs;
use crate::target::{find, Target};
use crate::ws_client;

/// How long a leaving receiver reads on for the events published before it left.
const DRAIN: Duration = Duration::from_secs(5);

/// A channel whose events are numbered 1, 2, … by one publisher at a time (so they are in order).
#[derive(Debug, Default)]
pub struct ChannelSeq {
    pub name: String,
    /// The highest number whose publish has begun (a receiver confirmed after this must get
    /// every later one).
    pub issued: AtomicU64,
    /// The highest number whose publish was answered (every receiver must get up to it).
    pub acked: AtomicU64,
}

impl ChannelSeq {
    pub fn new(name: String) -> Arc<ChannelSeq> {
        Arc::new(ChannelSeq {
            name,
            ..ChannelSeq::default()
        })
    }
}

/// The run's totals, added to by every task.
#[derive(Debug, Default)]
pub struct Counts {
    pub events_sent: AtomicU64,
    pub client_events_sent: AtomicU64,
    pub trigger_errors: AtomicU64,
    pub received: AtomicU64,
    /// Signed: a late arrival takes back a loss counted at its gap.
    pub lost: AtomicI64,
    pub duplicated: AtomicU64,
    pub out_of_order: AtomicU64,
    pub skipped: AtomicU64,
    pub connections: AtomicI64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    /// Healthy receivers whose connection ended before they chose to leave.
    pub dropped: AtomicU64,
    pub presence_joins: AtomicU64,
    pub presence_leaves: AtomicU64,
    pub member_added: AtomicU64,
    pub member_removed: AtomicU64,
    pub slow_opened: AtomicU64,
    pub slow_closed_4100: AtomicU64,
}

impl Counts {
    pub fn get(n: &AtomicU64) -> u64 {
        n.load(Ordering::Relaxed)
    }
}

/// Everything a soak task needs.
pub struct Ctx {
    pub t: Target,
    pub counts: Counts,
    /// Set when the load stops (publishers, senders and churn end).
    pub stop: watch::Receiver<bool>,
    /// Set once the publishers have stopped: receivers read the last events and finish.
    pub drain: watch::Receiver<bool>,
    pub skip_every: u64,
}

impl Ctx {
    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Resolves once `rx` reads true.
pub async fn when_set(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// Counts a connection as open while it lives.
pub struct Open<'a>(&'a AtomicI64);

impl<'a> Open<'a> {
    pub fn new(n: &'a AtomicI64) -> Open<'a> {
        n.fetch_add(1, Ordering::Relaxed);
        Open(n)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connects and subscribes to `channel` (signed for private and presence channels, with
/// `user` as the presence member); counted in `connects` or `connect_failures`.
pub async fn join(ctx: &Ctx, channel: &str, user: Option<&str>) -> Result<RawWs, String> {
    let joined = async {
        let (mut ws, sid) = RawWs::connect(&ctx.t, None).await?;
        subscribe(&ctx.t, &mut ws, &sid, channel, user).await?;
        Ok::<_, String>(ws)
    }
    .await;
    let n = match &joined {
        Ok(_) => &ctx.counts.connects,
        Err(_) => &ctx.counts.connect_failures,
    };
    n.fetch_add(1, Ordering::Relaxed);
    joined
}

/// Subscribes an open connection and waits for `subscription_succeeded`.
pub async fn subscribe(
    t: &Target,
    ws: &mut RawWs,
    sid: &str,
    channel: &str,
    user: Option<&str>,
) -> Result<(), String> {
    let mut data = json!({ "channel": channel });
    if let Some(u) = user {
        let member = json!({"user_id": u}).to_string();
        data["auth"] = t.channel_auth(sid, channel, Some(&member)).into();
        data["channel_data"] = member.into();
    } else if channel.starts_with("private-") {
        data["auth"] = t.channel_auth(sid, channel, None).into();
    }
    let msg = json!({"event": "pusher:subscribe", "data": data});
    ws.send_text(&msg.to_string()).await?;
    loop {
        let m = ws.next_json().await?;
        if ws_client::subscribed(&m, channel)? {
            return Ok(());
        }
    }
}

/// The answer to the server's `pusher:ping` (sent after `activity_timeout` of client silence;
/// a receiver that only listens must answer or be closed with 4201).
pub const PONG: &str = r#"{"event":"pusher:pong","data":{}}"#;

/// Whether a frame is the server's `pusher:ping`.
pub fn is_ping(text: &[u8]) -> bool {
    find(text, br#""event":"pusher:ping""#).is_some()
}

/// A receiver's loop: checks the numbers of `seq`'s events until `leave` resolves, then reads
/// on until it has the last answered one (at most `DRAIN`), then counts the tail it never got.
/// Returns the tracker's final state.
pub async fn follow(
    ctx: &Ctx,
    ws: &mut RawWs,
    seq: &ChannelSeq,
    mut tr: Tracker,
    leave: impl Future<Output = ()>,
) -> Tracker {
    tokio::pin!(leave);
    let mut ended = None;
    loop {
        let mut pong = false;
        let read = tokio::select! {
            r = ws.read_messages(|text| on_frame(ctx, &mut tr, text, &mut pong, u64::MAX)) => r,
            () = &mut leave => break,
        };
        if let Err(e) = answer(ws, read, pong).await {
            ended = Some(e);
            break;
        }
    }
    let target = seq.acked.load(Ordering::Relaxed);
    let until = Instant::now() + DRAIN;
    while ended.is_none() && target >= tr.from() && tr.last().is_none_or(|l| l < target) {
        let mut pong = false;
        let left = until.saturating_duration_since(Instant::now());
        let read = tokio::time::timeout(
            left,
            ws.read_messages(|text| on_frame(ctx, &mut tr, text, &mut pong, target)),
        )
        .await;
        match read {
            Err(_) => break, // drained as far as it goes
            Ok(r) => {
                if let Err(e) = answer(ws, r, pong).await {
                    ended = Some(e);
                }
            }
        }
    }
    if ended.is_some() {
        ctx.counts.dropped.fetch_add(1, Ordering::Relaxed);
    }
    let tail = tr.finish(target);
    let c = &ctx.counts;
    c.lost.fetch_add(tail as i64, Ordering::Relaxed);
    c.skipped.fetch_add(tr.skipped, Ordering::Relaxed);
    tr
}

/// After `read_messages` returned: answers a ping, or passes on the connection's end.
async fn answer(ws: &mut RawWs, read: Result<(), String>, pong: bool) -> Result<(), String> {
    read?;
    if pong {
        ws.send_text(PONG).await?;
    }
    Ok(())
}

/// One frame: numbered events go to the tracker. False (stop reading for now) for a ping to
/// answer, or once the number `until` has arrived.
fn on_frame(ctx: &Ctx, tr: &mut Tracker, text: &[u8], pong: &mut bool, until: u64) -> bool {
    if is_ping(text) {
        *pong = true;
        return false;
    }
    let Some(s) = extract_seq(text) else {
        return true;
    };
    let c = &ctx.counts;
    match tr.seq(s) {
        Seen::Skipped => return true,
        Seen::InOrder => {}
        Seen::Gap(n) => {
            c.lost.fetch_add(n as i64, Ordering::Relaxed);
        }
        Seen::Late => {
            c.lost.fetch_sub(1, Ordering::Relaxed);
            c.out_of_order.fetch_add(1, Ordering::Relaxed);
        }
        Seen::Duplicate => {
            c.duplicated.fetch_add(1, Ordering::Relaxed);
        }
    }
    c.received.fetch_add(1, Ordering::Relaxed);
    tr.last().is_none_or(|l| l < until)
}
