//! Slow consumers now and then: a connection subscribes to a channel of its own, stops reading,
//! and the channel is flooded until the server closes it with 4100 (its outbound queue,
//! `outbound_queue_size`, is full). A reading witness on the same channel must still get every
//! event. The slow connection's socket has a small receive buffer so that the kernel's buffers
//! do not hide the queue for minutes (the receive buffer autotunes up to 32 MB here).
//!
//! How the 4100 is confirmed: the server's `slow_consumer_disconnects_total` rises (it counts
//! 4100 closes only). The close frame itself rarely reaches the client, because the server
//! closes while the client's socket is full (tests/slow_consumer.rs says more), so when the
//! slow connection reads again it sees the queued events and then the end of the stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokio::net::TcpSocket;
use tokio::sync::watch;

use super::conn::{follow, subscribe, when_set, ChannelSeq, Ctx, Open};
use super::seq::Tracker;
use crate::http_client::{self, ApiClient};
use crate::raw_ws::RawWs;

/// Events per `batch_events` request of the flood.
const BATCH: usize = 10;

/// How the slow consumers are made.
#[derive(Clone, Debug)]
pub struct SlowPlan {
    /// Seconds between episodes (0: none).
    pub every: u64,
    /// Flood events per second and bytes of padding each.
    pub rate: f64,
    pub payload: usize,
    /// Seconds of flood after which a connection still open counts as not closed.
    pub timeout: u64,
    /// The slow socket's receive buffer (bytes).
    pub recv_buffer: u32,
    /// Where the server's metrics are, and their prefix.
    pub metrics: Option<(u16, String)>,
}

/// One episode's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Episode {
    pub n: usize,
    /// Seconds into the run when the flood began.
    pub at: f64,
    /// Seconds of flood until the server counted the close (or the timeout).
    pub seconds_to_close: f64,
    /// The server's 4100 counter rose.
    pub server_counted_4100: Option<bool>,
    /// The slow connection found its end when it read again (a close frame or the stream's end).
    pub ended: bool,
    /// The close frame with 4100 reached it.
    pub close_frame_4100: bool,
    pub flood_events: u64,
    /// Events the reading witness on the same channel lost.
    pub witness_lost: u64,
}

/// Runs episodes every `plan.every` seconds (the first after half of it) until the load stops.
pub async fn episodes(ctx: Arc<Ctx>, plan: SlowPlan, started: Instant) -> Vec<Episode> {
    let mut out = Vec::new();
    if plan.every == 0 {
        return out;
    }
    let mut next = started + Duration::from_secs(plan.every / 2);
    let mut n = 0;
    loop {
        tokio::select! {
            biased; // a stop wins over an episode already due
            () = when_set(ctx.stop.clone()) => return out,
            () = tokio::time::sleep_until(next.into()) => {}
        }
        n += 1;
        match episode(&ctx, &plan, n, started).await {
            Ok(e) => {
                println!(
                    "soak: slow consumer {n}: {} after {:.1} s of flood ({} events); server counted 4100: {}, close frame seen: {}, witness lost {}",
                    if e.ended { "closed" } else { "NOT closed" },
                    e.seconds_to_close,
                    e.flood_events,
                    e.server_counted_4100.map_or("n/a", |b| if b { "yes" } else { "NO" }),
                    e.close_frame_4100,
                    e.witness_lost
                );
                out.push(e);
            }
            Err(e) => println!("soak: slow consumer {n}: could not run: {e}"),
        }
        next += Duration::from_secs(plan.every);
    }
}

async fn slow_count(plan: &SlowPlan, host: &str) -> Option<f64> {
    let (port, prefix) = plan.metrics.as_ref()?;
    let (_, text) = http_client::get_plain(host, *port, "/metrics").await.ok()?;
    let text = String::from_utf8_lossy(&text);
    http_client::metric_sum(&text, &format!("{prefix}_slow_consumer_disconnects_total"))
}

async fn episode(
    ctx: &Arc<Ctx>,
    plan: &SlowPlan,
    n: usize,
    started: Instant,
) -> Result<Episode, String> {
    let seq = ChannelSeq::new(format!("soak-slow-{n}"));
    let mut witness = super::conn::join(ctx, &seq.name, None).await?;
    let (done_tx, done_rx) = watch::channel(false);
    let (c, s) = (ctx.clone(), seq.clone());
    let watching = tokio::spawn(async move {
        let _open = Open::new(&c.counts.connections);
        let tr = Tracker::new(1, c.skip_every);
        follow(&c, &mut witness, &s, tr, when_set(done_rx))
            .await
            .lost()
    });
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(plan.recv_buffer)
        .map_err(|e| e.to_string())?;
    let addr = tokio::net::lookup_host((ctx.t.host.as_str(), ctx.t.port))
        .await
        .map_err(|e| e.to_string())?
        .find(|a| a.is_ipv4())
        .ok_or("no IPv4 address")?;
    let tcp = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let stream = crate::stream::wrap(&ctx.t, tcp).await?;
    let (mut slow, sid) = RawWs::connect_over(&ctx.t, stream).await?;
    subscribe(&ctx.t, &mut slow, &sid, &seq.name, None).await?;
    let open = Open::new(&ctx.counts.connections);
    ctx.counts.slow_opened.fetch_add(1, Ordering::Relaxed);
    let before = slow_count(plan, &ctx.t.host).await;

    // The flood: numbered batches, so the witness checks it too.
    let begun = Instant::now();
    let at = begun.duration_since(started).as_secs_f64();
    let mut api = ApiClient::connect(&ctx.t).await?;
    let pad = "y".repeat(plan.payload);
    let mut tick =
        tokio::time::interval(Duration::from_secs_f64(BATCH as f64 / plan.rate.max(0.1)));
    let mut last_check = Instant::now();
    let mut counted = None;
    let mut flood_events = 0u64;
    while begun.elapsed() < Duration::from_secs(plan.timeout) {
        tick.tick().await;
        let first = seq.acked.load(Ordering::Relaxed) + 1;
        let events: Vec<(String, &str, String)> = (first..first + BATCH as u64)
            .map(|s| {
                (
                    seq.name.clone(),
                    "soak",
                    json!({"seq": s, "pad": pad}).to_string(),
                )
            })
            .collect();
        seq.issued
            .store(first + BATCH as u64 - 1, Ordering::Relaxed);
        if api.batch(&events).await == Ok(200) {
            seq.acked.fetch_add(BATCH as u64, Ordering::Relaxed);
            flood_events += BATCH as u64;
        } else {
            api = ApiClient::connect(&ctx.t).await?;
        }
        if last_check.elapsed() >= Duration::from_secs(1) {
            last_check = Instant::now();
            if let (Some(b), Some(now)) = (before, slow_count(plan, &ctx.t.host).await) {
                if now > b {
                    counted = Some(true);
                    break;
                }
                counted = Some(false);
            }
        }
    }
    let seconds_to_close = begun.elapsed().as_secs_f64();
    let _ = done_tx.send(true);
    let witness_lost = watching.await.unwrap_or(0);

    // Reads again: everything it was sent, then the end (or nothing more if still open).
    let mut close_frame_4100 = false;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(5), slow.read_messages(|_| true)).await {
            Err(_) => break false,
            Ok(Ok(())) => continue,
            Ok(Err(e)) => {
                // `read_messages` reports a close frame's code in its error text.
                close_frame_4100 = e.contains("(4100)");
                break true;
            }
        }
    };
    drop(slow);
    drop(open);
    if counted.is_none() && before.is_some() {
        counted = slow_count(plan, &ctx.t.host)
            .await
            .zip(before)
            .map(|(now, b)| now > b);
    }
    let confirmed = match counted {
        Some(c) => c && ended,
        None => close_frame_4100,
    };
    if confirmed {
        ctx.counts.slow_closed_4100.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Episode {
        n,
        at,
        seconds_to_close,
        server_counted_4100: counted,
        ended,
        close_frame_4100,
        flood_events,
        witness_lost,
    })
}
