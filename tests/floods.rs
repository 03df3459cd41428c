//! Floods (issue 8): thousands of connections dropped without a close frame, connections that
//! never send a request, slowloris request heads, oversized heads and silent clients. Each is
//! bounded by a timeout or a limit; afterwards every gauge is back to idle and a normal client
//! connects, subscribes and receives events.
//!
//! The server runs in-process (`TestServer`) with its `/metrics` port on; the gauges are
//! computed from live state at each scrape, so "back to idle" is what the server really holds.

mod common;
use common::process::{metric, scrape, wait_for_metrics};
use common::*;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";
const CONNECTED: &str = "clarion_connected{app_id=\"1\"}";
const CHANNELS_GAUGE: &str = "clarion_channels{app_id=\"1\"}";
const MEMBERS: &str = "clarion_presence_members{app_id=\"1\"}";
const OPEN_SOCKETS: &str = "clarion_open_sockets";
/// Every gauge at its idle value.
const IDLE: [(&str, f64); 4] = [
    (CONNECTED, 0.0),
    (CHANNELS_GAUGE, 0.0),
    (MEMBERS, 0.0),
    (OPEN_SOCKETS, 0.0),
];
/// How long gauges may take to settle after a flood.
const SETTLE: Duration = Duration::from_secs(15);

/// A server with `extra` server settings and /metrics on a free port; returns it and the port.
async fn server(extra: &str) -> (TestServer, u16) {
    TestServer::start_with_metrics(&format!("{extra}\n{APP}")).await
}

/// A normal client connects, subscribes and receives an event triggered over the HTTP API.
/// Returns the client, still connected.
async fn normal_client_works(s: &TestServer, tag: &str) -> WsClient {
    let (mut c, _) = s.connect("k").await;
    let channel = format!("normal-{tag}");
    let ok = c.subscribe(&channel, None, None).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
    hello(s, &channel, tag).await;
    let m = c.expect_event("hello").await;
    assert_eq!(m["data"], format!("{{\"tag\":\"{tag}\"}}"), "{m}");
    c
}

/// Triggers `hello` with `{"tag": tag}` on `channel`.
async fn hello(s: &TestServer, channel: &str, tag: &str) {
    trigger(
        s,
        &app1(),
        channel,
        "hello",
        &format!("{{\"tag\":\"{tag}\"}}"),
    )
    .await;
}

type Ws = WebSocketStream<TcpStream>;

/// The next text frame as JSON.
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                return serde_json::from_str(t.as_str()).expect("server sends JSON")
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// A raw WebSocket (its TCP socket reachable for SO_LINGER) subscribed to a public channel and
/// a presence channel as user `i`.
async fn member(addr: SocketAddr, i: usize, channels: usize) -> Ws {
    let stream = TcpStream::connect(addr).await.expect("tcp connect");
    let url = format!("ws://{addr}/app/k?protocol=7");
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, stream))
        .await
        .expect("handshake in time")
        .expect("websocket handshake");
    let established = next_json(&mut ws).await;
    assert_eq!(established["event"], "pusher:connection_established");
    let sid = decode_data(&established)["socket_id"]
        .as_str()
        .expect("socket_id")
        .to_string();
    let public = format!("flood-{}", i % channels);
    send_json(
        &mut ws,
        json!({"event": "pusher:subscribe", "data": {"channel": public}}),
    )
    .await;
    let presence = format!("presence-flood-{}", i % channels);
    let data = json!({"user_id": i, "user_info": {"n": i}}).to_string();
    let auth = channel_auth(&app1(), &sid, &presence, Some(&data));
    send_json(
        &mut ws,
        json!({"event": "pusher:subscribe", "data": {"channel": presence, "auth": auth, "channel_data": data}}),
    )
    .await;
    let mut succeeded = 0;
    while succeeded < 2 {
        let m = next_json(&mut ws).await;
        match m["event"].as_str() {
            Some("pusher_internal:subscription_succeeded") => succeeded += 1,
            Some("pusher_internal:member_added") => {}
            _ => panic!("unexpected frame while subscribing: {m}"),
        }
    }
    ws
}

/// Opens `n` members, 64 handshakes at a time.
async fn members(addr: SocketAddr, n: usize, channels: usize) -> Vec<Ws> {
    futures_util::stream::iter(0..n)
        .map(|i| member(addr, i, channels))
        .buffer_unordered(64)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_dropped_without_a_close_frame_leave_every_gauge_idle() {
    const N: usize = 1200;
    const N_CHANNELS: usize = 20; // 60 presence members per channel, under the default 100
    let (s, port) = server("").await;
    let started = Instant::now();
    let flood = members(s.addr, N, N_CHANNELS).await;
    println!(
        "{N} members connected and subscribed in {:?}",
        started.elapsed()
    );

    let m = scrape(port).await;
    assert_eq!(metric(&m, CONNECTED), N as f64, "{m}");
    assert_eq!(metric(&m, CHANNELS_GAUGE), 2.0 * N_CHANNELS as f64, "{m}");
    assert_eq!(metric(&m, MEMBERS), N as f64, "{m}");
    assert_eq!(metric(&m, OPEN_SOCKETS), N as f64, "{m}");

    // Drop them all at once without a close frame: half with a reset (SO_LINGER 0), half with
    // a plain FIN.
    let dropped = Instant::now();
    for (i, ws) in flood.into_iter().enumerate() {
        if i % 2 == 0 {
            ws.get_ref().set_zero_linger().expect("SO_LINGER 0");
        }
        drop(ws);
    }
    let m = wait_for_metrics(port, SETTLE, &IDLE).await;
    println!("gauges idle {:?} after the drop", dropped.elapsed());
    assert_eq!(
        metric(&m, "clarion_new_disconnections_total{app_id=\"1\"}"),
        N as f64,
        "every dropped connection is counted as a disconnection"
    );

    let c = normal_client_works(&s, "after-drop").await;
    drop(c);
    wait_for_metrics(port, SETTLE, &IDLE).await;
}

/// What a raw connection got before the server closed it.
#[derive(Debug)]
struct Ending {
    after: Duration,
    bytes: Vec<u8>,
}

/// Waits (up to `within`) for the server to close `stream`; returns when and what it sent.
async fn wait_closed(mut stream: TcpStream, opened: Instant, within: Duration) -> Option<Ending> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::from_std(opened + within);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Some(Ending {
                    after: opened.elapsed(),
                    bytes,
                })
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_send_a_request_are_closed_after_the_handshake_timeout() {
    const N: usize = 500;
    const KEEP_ALIVE: usize = 20;
    let timeout = Duration::from_secs(1);
    let (s, port) = server("handshake_timeout = 1").await;

    // 500 connections that send nothing at all.
    let flood_start = Instant::now();
    let mut waiting = tokio::task::JoinSet::new();
    for _ in 0..N {
        let opened = Instant::now();
        let stream = TcpStream::connect(s.addr).await.expect("tcp connect");
        waiting.spawn(wait_closed(stream, opened, timeout * 10));
    }
    // And some that finish one request on a keep-alive connection, then go quiet: waiting for
    // the next request head is bounded the same way.
    let mut idle = tokio::task::JoinSet::new();
    for _ in 0..KEEP_ALIVE {
        let mut stream = TcpStream::connect(s.addr).await.expect("tcp connect");
        stream
            .write_all(b"GET /up HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).await.expect("a response");
        assert_eq!(&first, b"HTTP/1.1 200");
        idle.spawn(wait_closed(stream, Instant::now(), timeout * 10));
    }
    // The server holds them all: the gauge counts every one (exactly, as long as none can
    // have timed out yet; the server accepts in order, and the keep-alive ones were answered).
    let m = scrape(port).await;
    let open = metric(&m, OPEN_SOCKETS);
    println!(
        "open_sockets during the flood: {open} (scraped {:?} after the first connect)",
        flood_start.elapsed()
    );
    if flood_start.elapsed() < timeout * 9 / 10 {
        assert_eq!(open, (N + KEEP_ALIVE) as f64, "{m}");
    } else {
        assert!(open > 0.0 && open <= (N + KEEP_ALIVE) as f64, "{m}");
    }

    // Meanwhile a normal client is served...
    let mut normal = normal_client_works(&s, "during-silence").await;

    let mut closed_after = Vec::new();
    while let Some(r) = waiting.join_next().await {
        let ending = r
            .expect("task")
            .expect("a silent connection is closed by the server");
        // hyper closes a connection whose head timed out without an answer.
        assert!(
            ending.bytes.is_empty() || ending.bytes.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&ending.bytes)
        );
        closed_after.push(ending.after);
    }
    while let Some(r) = idle.join_next().await {
        let ending = r
            .expect("task")
            .expect("an idle keep-alive connection is closed by the server");
        closed_after.push(ending.after);
    }
    closed_after.sort();
    let (first, last) = (closed_after[0], closed_after[closed_after.len() - 1]);
    println!(
        "{} silent connections closed between {first:?} and {last:?} (handshake_timeout {timeout:?})",
        closed_after.len()
    );
    assert!(
        first >= timeout * 9 / 10,
        "closed before the timeout: {first:?}"
    );
    assert!(
        last <= timeout + Duration::from_secs(4),
        "closed too late: {last:?}"
    );

    // ...and, upgraded, is not bound by the handshake timeout: it still gets events.
    hello(&s, "normal-during-silence", "later").await;
    let m = normal.expect_event("hello").await;
    assert_eq!(m["data"], "{\"tag\":\"later\"}");
    wait_for_metrics(port, SETTLE, &[(OPEN_SOCKETS, 1.0), (CONNECTED, 1.0)]).await;
    drop(normal);
    wait_for_metrics(port, SETTLE, &IDLE).await;
    let c = normal_client_works(&s, "after-silence").await;
    drop(c);
    wait_for_metrics(port, SETTLE, &IDLE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_request_heads_are_closed_after_the_handshake_timeout() {
    const N: usize = 50;
    let timeout = Duration::from_secs(1);
    let (s, port) = server("handshake_timeout = 1").await;
    let mut dribbling = tokio::task::JoinSet::new();
    for i in 0..N {
        let addr = s.addr;
        dribbling.spawn(async move {
            let opened = Instant::now();
            let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
            // Half WebSocket upgrades, half API requests; none ever finishes its head.
            let start: &[u8] = if i % 2 == 0 {
                b"GET /app/k?protocol=7 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nX-Slow: "
            } else {
                b"POST /apps/1/events HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
            };
            stream.write_all(start).await.expect("write");
            let (mut r, mut w) = stream.split();
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            let mut dribbled = 0u32;
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    n = r.read(&mut buf) => match n {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {} // an error response; the close follows
                    },
                    _ = tick.tick() => {
                        if w.write_all(b"a").await.is_err() {
                            break;
                        }
                        dribbled += 1;
                    }
                }
                assert!(
                    opened.elapsed() < Duration::from_secs(10),
                    "a slowloris connection was never closed"
                );
            }
            (opened.elapsed(), dribbled)
        });
    }
    let mut normal = normal_client_works(&s, "during-slowloris").await;
    let mut ends = Vec::new();
    while let Some(r) = dribbling.join_next().await {
        ends.push(r.expect("task"));
    }
    ends.sort();
    println!(
        "{N} slowloris connections closed between {:?} and {:?}, after dribbling {}..{} bytes",
        ends[0].0,
        ends[N - 1].0,
        ends.iter().map(|e| e.1).min().unwrap_or(0),
        ends.iter().map(|e| e.1).max().unwrap_or(0)
    );
    for (after, dribbled) in &ends {
        // Bytes kept arriving (one every 200 ms) and did not extend the deadline.
        assert!(*dribbled >= 4, "closed after only {dribbled} bytes");
        assert!(*after >= timeout * 9 / 10, "closed early: {after:?}");
        assert!(*after <= timeout * 3, "closed too late: {after:?}");
    }
    hello(&s, "normal-during-slowloris", "later").await;
    normal.expect_event("hello").await;
    drop(normal);
    wait_for_metrics(port, SETTLE, &IDLE).await;
    let c = normal_client_works(&s, "after-slowloris").await;
    drop(c);
    wait_for_metrics(port, SETTLE, &IDLE).await;
}

/// How the server answered a raw request.
#[derive(Debug, PartialEq)]
enum Answer {
    Status(u16),
    /// Closed (or reset) without a status line.
    Closed,
}

/// Sends `head` on a fresh connection and reads the answer until the server closes.
async fn raw_request(addr: SocketAddr, head: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
    // The server may close before it read everything: a failed write is part of the answer.
    let _ = stream.write_all(head).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf)).await {
            Err(_) => panic!("no answer and no close in time"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    match text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
    {
        Some(code) => Answer::Status(code),
        None => Answer::Closed,
    }
}

fn head_with(path: &str, headers: &[String]) -> Vec<u8> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_heads_are_refused_with_431() {
    let (s, port) = server("").await;
    let big = |n: usize| vec![format!("X-Big: {}", "a".repeat(n))];
    let many = |n: usize| -> Vec<String> { (0..n).map(|i| format!("X-H{i}: v")).collect() };

    // A head just under 16 KiB is served.
    assert_eq!(
        raw_request(s.addr, &head_with("/up", &big(15 * 1024))).await,
        Answer::Status(200)
    );
    // One 20 KiB header: 431, on the API port and on the WebSocket endpoint alike.
    for path in ["/up", "/app/k?protocol=7"] {
        assert_eq!(
            raw_request(s.addr, &head_with(path, &big(20 * 1024))).await,
            Answer::Status(431),
            "{path}"
        );
    }
    // 2,000 small headers (about 20 KB): 431.
    assert_eq!(
        raw_request(s.addr, &head_with("/up", &many(2000))).await,
        Answer::Status(431)
    );
    // 150 small headers (under 16 KiB, over hyper's 100-header cap): 431 too.
    assert_eq!(
        raw_request(s.addr, &head_with("/up", &many(150))).await,
        Answer::Status(431)
    );
    // A flood of them, concurrently: every one refused, none served.
    let answers: Vec<Answer> = futures_util::stream::iter(0..200)
        .map(|i| {
            let head = if i % 2 == 0 {
                head_with("/app/k?protocol=7", &big(64 * 1024))
            } else {
                head_with("/up", &many(2000))
            };
            let addr = s.addr;
            async move { raw_request(addr, &head).await }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let refused = answers
        .iter()
        .filter(|a| **a == Answer::Status(431))
        .count();
    let closed = answers.iter().filter(|a| **a == Answer::Closed).count();
    println!(
        "200 oversized heads at once: {refused} answered 431, {closed} closed without an answer"
    );
    assert_eq!(
        refused + closed,
        answers.len(),
        "an oversized head is refused: {answers:?}"
    );

    let c = normal_client_works(&s, "after-big-heads").await;
    assert_eq!(s.raw_http("GET", "/up", "").await.0, 200);
    drop(c);
    wait_for_metrics(port, SETTLE, &IDLE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_pinged_then_closed_with_4201_and_forgotten() {
    // A truly half-open TCP peer (one that vanished without FIN or RST) cannot be produced on
    // loopback without root firewall rules. To the server it is indistinguishable from a peer
    // that is connected but silent: no bytes arrive. These clients are that application-level
    // equivalent: they subscribe, then never answer anything, pusher:ping included.
    const N: usize = 200;
    const N_CHANNELS: usize = 10;
    let (s, port) = server("activity_timeout = 1\npong_timeout = 1").await;

    // One silent client that still reads: it sees the ping, then the 4201 close.
    let setup = Instant::now();
    let (mut reader, sid) = s.connect("k").await;
    let data = json!({"user_id": "reader"}).to_string();
    let auth = channel_auth(&app1(), &sid, "presence-flood-0", Some(&data));
    reader
        .subscribe("presence-flood-0", Some(&auth), Some(&data))
        .await;
    // The rest neither read nor write after subscribing.
    let silent = members(s.addr, N, N_CHANNELS).await;
    let m = scrape(port).await;
    // All are held until the first can have been closed (1 s of silence, then 1 s for a pong).
    if setup.elapsed() < Duration::from_millis(1900) {
        assert_eq!(metric(&m, CONNECTED), (N + 1) as f64, "{m}");
        assert_eq!(metric(&m, MEMBERS), (N + 1) as f64, "{m}");
    }

    let since = Instant::now();
    reader.expect_event("pusher:ping").await;
    assert_eq!(
        reader.closed().await,
        Closed::Code(4201, "Pong reply not received".into())
    );
    wait_for_metrics(port, SETTLE, &IDLE).await;
    println!(
        "{N} silent clients closed and forgotten {:?} after they fell silent (activity 1 s + pong 1 s + close grace)",
        since.elapsed()
    );

    // What the silent ones were sent, read now: a ping, then the 4201 close frame.
    for mut ws in silent {
        let mut saw_ping = false;
        let code = loop {
            match tokio::time::timeout(WAIT, ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                    saw_ping |= v["event"] == "pusher:ping";
                }
                Ok(Some(Ok(Message::Close(f)))) => break f.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert!(saw_ping, "a silent client is pinged before it is closed");
        assert_eq!(code, Some(4201));
    }

    let c = normal_client_works(&s, "after-silent").await;
    drop(c);
    wait_for_metrics(port, SETTLE, &IDLE).await;
}
