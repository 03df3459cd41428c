//! Slow consumers (issue 8): a client that stops reading while its channel is busy is closed with
//! 4100 once its bounded outbound queue fills; the server's memory stays flat instead of
//! buffering the backlog, and the subscribers that do read lose nothing.
//!
//! The server runs as its own process (the real binary) so that its RSS is its own.
//!
//! How the 4100 is observed: the server closes a slow consumer while its socket is full, so its
//! close frame rarely fits and the client, when it reads again, finds the queued events and then
//! the end of the stream. The test therefore checks the close through
//! `clarion_slow_consumer_disconnects_total` (counted only for code 4100) and accepts a close
//! frame only if it carries 4100.
//!
//! Why the RSS bound means something: a broadcast frame is one shared allocation, so an
//! unbounded queue would keep alive every frame the least-served slow client has not read. The
//! flood is sized so that this backlog (about 90 MB) is several times the bound; with
//! `outbound_queue_size` set to a million the same test sees the RSS grow by about as much and
//! fails.

mod common;
use common::process::{metric, wait_for_metrics, Process};
use common::*;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nmax_event_batch_size = 100\nmax_event_payload_size = 65536\n";
/// Frames a connection may have queued before it is closed with 4100.
const QUEUE: u64 = 64;
/// Subscribers that read everything.
const NORMAL: usize = 20;
/// Subscribers that stop reading after they subscribed.
const SLOW: usize = 10;
/// Events of the first phase, without slow clients (the latency baseline).
const BASE: u64 = 1000;
/// Events of the second phase, with slow clients subscribed.
const FLOOD: u64 = 6000;
/// Bytes of padding per event.
const PAD: usize = 16 * 1024;
/// Events per `batch_events` call.
const BATCH: u64 = 10;
/// The publisher lets the slowest normal subscriber lag at most this many events behind before
/// it publishes a batch, so a reading subscriber never has more than WINDOW + BATCH < QUEUE
/// frames queued and can never be mistaken for a slow one, however slow this machine is.
const WINDOW: u64 = 40;
/// How much the server's RSS may grow while the slow clients are flooded.
const RSS_BOUND: u64 = 30 * 1024 * 1024;
/// Whole-test bound on waiting for any one stage.
const STAGE: Duration = Duration::from_secs(30);

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as u64
}

/// `(seq, published_at_us)` of a `tick` frame, whose data is `"<seq> <micros> <padding>"`.
fn parse_tick(text: &str) -> Option<(u64, u64)> {
    let rest = text.strip_prefix("{\"event\":\"tick\",\"channel\":\"busy\",\"data\":\"")?;
    let mut parts = rest.splitn(3, ' ');
    let seq = parts.next()?.parse().ok()?;
    let at = parts.next()?.parse().ok()?;
    Some((seq, at))
}

type Ws = WebSocketStream<TcpStream>;

/// A WebSocket on a socket with a tiny receive buffer, subscribed to `busy`.
async fn subscriber(p: &Process, recv_buffer: Option<u32>) -> Ws {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let stream = socket.connect(p.addr).await.expect("tcp connect");
    let (mut ws, _) =
        tokio::time::timeout(WAIT, tokio_tungstenite::client_async(p.ws_url("k"), stream))
            .await
            .expect("handshake in time")
            .expect("websocket handshake");
    let first = next_text(&mut ws).await;
    assert!(first.contains("pusher:connection_established"), "{first}");
    let sub = json!({"event": "pusher:subscribe", "data": {"channel": "busy"}});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .expect("send subscribe");
    let ok = next_text(&mut ws).await;
    assert!(
        ok.contains("pusher_internal:subscription_succeeded"),
        "{ok}"
    );
    ws
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads every frame; checks each tick is the next one; records its latency. Returns the
/// latencies in microseconds indexed by sequence number, and the still open connection.
async fn read_all(mut ws: Ws, received: Arc<AtomicU64>, total: u64) -> (Vec<u64>, Ws) {
    let mut latencies = Vec::with_capacity(total as usize);
    while (latencies.len() as u64) < total {
        let frame = tokio::time::timeout(STAGE, ws.next()).await;
        let text = match frame {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!(
                "a normal subscriber lost its stream after {} events: {other:?}",
                latencies.len()
            ),
        };
        let (seq, at) = parse_tick(text.as_str()).unwrap_or_else(|| panic!("not a tick: {text}"));
        assert_eq!(
            seq,
            latencies.len() as u64,
            "events must arrive complete and in order"
        );
        latencies.push(micros_now().saturating_sub(at));
        received.store(seq + 1, Ordering::Release);
    }
    (latencies, ws)
}

/// Publishes ticks `from..to` in batches, never letting a normal subscriber fall more than
/// WINDOW events behind.
async fn publish(p: &Process, progress: &[Arc<AtomicU64>], from: u64, to: u64) {
    let pad = "x".repeat(PAD);
    let mut seq = from;
    while seq < to {
        let deadline = Instant::now() + STAGE;
        while progress
            .iter()
            .map(|r| r.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
            + WINDOW
            < seq
        {
            assert!(
                Instant::now() < deadline,
                "normal subscribers stalled at {seq}"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let end = (seq + BATCH).min(to);
        let at = micros_now();
        let batch: Vec<_> = (seq..end)
            .map(|s| json!({"name": "tick", "channel": "busy", "data": format!("{s} {at} {pad}")}))
            .collect();
        let body = json!({ "batch": batch }).to_string();
        let (status, resp) = p.api(&app1(), "POST", "/apps/1/batch_events", &body).await;
        assert_eq!(status, 200, "{resp}");
        seq = end;
    }
}

struct Percentiles {
    p50: u64,
    p99: u64,
    max: u64,
}

fn percentiles(mut v: Vec<u64>) -> Percentiles {
    v.sort_unstable();
    let at = |q: usize| v[(v.len() * q / 100).min(v.len() - 1)];
    Percentiles {
        p50: at(50),
        p99: at(99),
        max: v[v.len() - 1],
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// How a slow client's stream ended once it read again.
#[derive(Debug)]
struct SlowEnd {
    ticks: u64,
    close: Option<u16>,
}

/// Reads a slow client to its end: the ticks it got must be a gap-free prefix of the stream
/// starting at `first`.
async fn drain_slow(mut ws: Ws, first: u64) -> SlowEnd {
    let mut ticks = 0;
    loop {
        match tokio::time::timeout(STAGE, ws.next()).await {
            Err(_) => panic!("a slow client was never closed (got {ticks} ticks)"),
            Ok(Some(Ok(Message::Text(t)))) => {
                let (seq, _) = parse_tick(t.as_str()).unwrap_or_else(|| panic!("not a tick: {t}"));
                assert_eq!(seq, first + ticks, "a slow client gets a gap-free prefix");
                ticks += 1;
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return SlowEnd {
                    ticks,
                    close: frame.map(|f| u16::from(f.code)),
                }
            }
            Ok(Some(Ok(_))) => {}
            // The server dropped the socket after the queued bytes (its close frame did not
            // fit into a full socket buffer): the stream ends without a close frame.
            Ok(None) | Ok(Some(Err(_))) => return SlowEnd { ticks, close: None },
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_with_4100_memory_stays_flat_and_readers_lose_nothing(
) {
    let queue = QUEUE.to_string();
    let p = Process::start(APP, &["--outbound-queue-size", &queue]).await;

    let mut progress = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..NORMAL {
        let ws = subscriber(&p, None).await;
        let received = Arc::new(AtomicU64::new(0));
        progress.push(received.clone());
        readers.push(tokio::spawn(read_all(ws, received, BASE + FLOOD)));
    }
    let rss_idle = p.rss_bytes();

    // Phase 1: the busy stream with readers only.
    let phase1 = Instant::now();
    publish(&p, &progress, 0, BASE).await;
    let phase1 = phase1.elapsed();

    // Phase 2: the same stream while SLOW clients subscribe and then stop reading.
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        slow.push(subscriber(&p, Some(4096)).await);
    }
    let rss_before = p.rss_bytes();
    let phase2 = Instant::now();
    publish(&p, &progress, BASE, BASE + FLOOD).await;
    let mut latencies = Vec::new();
    let mut still_open = Vec::new();
    for r in readers {
        let (l, ws) = r.await.expect("reader task");
        latencies.push(l);
        still_open.push(ws);
    }
    let phase2 = phase2.elapsed();

    // Every slow client was closed as a slow consumer, no reader was.
    let m = wait_for_metrics(
        p.metrics_port,
        STAGE,
        &[
            ("clarion_slow_consumer_disconnects_total", SLOW as f64),
            ("clarion_connected{app_id=\"1\"}", NORMAL as f64),
        ],
    )
    .await;
    let rss_after = p.rss_bytes();

    // The slow clients read again: a gap-free prefix of their stream, then the end.
    let mut ends = Vec::new();
    for ws in slow {
        ends.push(drain_slow(ws, BASE).await);
    }
    for end in &ends {
        assert!(
            end.ticks < FLOOD,
            "a slow client cannot have received the whole stream: {end:?}"
        );
        assert!(
            end.close.is_none() || end.close == Some(4100),
            "a slow consumer is closed with 4100: {end:?}"
        );
    }
    let frame_len = format!(
        "{{\"event\":\"tick\",\"channel\":\"busy\",\"data\":\"{} {} {}\"}}",
        BASE + FLOOD,
        micros_now(),
        "x".repeat(PAD)
    )
    .len() as u64
        + 4; // WebSocket header of a 126..65535-byte frame
             // A broadcast frame is one shared allocation however many queues hold it, so an unbounded
             // queue would have kept alive every frame the least-served slow client did not get.
    let least = ends.iter().map(|e| e.ticks).min().unwrap_or(0);
    let would_be_backlog = (FLOOD - least) * frame_len;
    let undelivered: u64 = ends.iter().map(|e| (FLOOD - e.ticks) * frame_len).sum();

    let lat_base = percentiles(
        latencies
            .iter()
            .flat_map(|l| l[..BASE as usize].to_vec())
            .collect(),
    );
    let lat_with = percentiles(
        latencies
            .iter()
            .flat_map(|l| l[BASE as usize..].to_vec())
            .collect(),
    );
    let growth = rss_after.saturating_sub(rss_before);
    println!(
        "server RSS: idle with {NORMAL} readers {:.1} MB; before the slow flood {:.1} MB; after {:.1} MB (growth {:.1} MB, bound {:.0} MB)",
        mb(rss_idle),
        mb(rss_before),
        mb(rss_after),
        mb(growth),
        mb(RSS_BOUND)
    );
    println!(
        "would-be backlog with an unbounded queue: {:.1} MB ({} shared frames of {frame_len} B the least-served slow client never got; {:.1} MB undelivered over all {SLOW} slow clients); queue bound {QUEUE} frames = {:.1} MB per client",
        mb(would_be_backlog),
        FLOOD - least,
        mb(undelivered),
        mb(QUEUE * frame_len)
    );
    println!(
        "slow clients: ticks read before the end {:?}; close frames {:?}; slow_consumer_disconnects_total {}",
        ends.iter().map(|e| e.ticks).collect::<Vec<_>>(),
        ends.iter().map(|e| e.close).collect::<Vec<_>>(),
        metric(&m, "clarion_slow_consumer_disconnects_total")
    );
    println!(
        "reader latency (publish -> receive, {NORMAL} readers, events of {PAD} B): without slow clients ({BASE} events, {:.1} s) p50 {} us p99 {} us max {} us; with {SLOW} slow clients ({FLOOD} events, {:.1} s) p50 {} us p99 {} us max {} us",
        phase1.as_secs_f64(),
        lat_base.p50,
        lat_base.p99,
        lat_base.max,
        phase2.as_secs_f64(),
        lat_with.p50,
        lat_with.p99,
        lat_with.max,
    );

    assert!(
        growth < RSS_BOUND,
        "the server's RSS grew by {:.1} MB while slow clients were flooded",
        mb(growth)
    );
    assert!(
        would_be_backlog > 2 * RSS_BOUND,
        "the flood must be big enough for the RSS bound to mean something: {:.1} MB",
        mb(would_be_backlog)
    );
    // Sanity only (no tight timing in tests): readers are not held up by the slow clients.
    assert!(lat_with.p99 < 1_000_000, "p99 {} us", lat_with.p99);
}
