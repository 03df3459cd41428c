//! Frames: `pusher:ping` and WebSocket pings, activity timeouts, malformed and binary frames,
//! the message size limit.

use super::*;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// Ping / pong and activity
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_ping_gets_pusher_pong() {
    let server = TestServer::dev().await;
    let (mut c, _) = server.connect("app-key").await;
    c.send(json!({"event": "pusher:ping", "data": {}})).await;
    let m = c.recv().await;
    assert_eq!(m["event"], "pusher:pong", "{m}");
    // Reverb-style ping without data works too.
    c.send_text(r#"{"event":"pusher:ping"}"#).await;
    let m = c.recv().await;
    assert_eq!(m["event"], "pusher:pong", "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_ping_frame_gets_pong_frame_with_same_payload() {
    let server = TestServer::dev().await;
    let (mut c, _) = server.connect("app-key").await;
    c.ws.send(Message::Ping(bytes::Bytes::from_static(b"are-you-there")))
        .await
        .expect("send ping frame");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, c.ws.next()).await {
            Err(_) => panic!("no pong frame in time"),
            Ok(Some(Ok(Message::Pong(p)))) => {
                assert_eq!(&p[..], b"are-you-there", "pong must echo the ping payload");
                break;
            }
            Ok(Some(Ok(Message::Text(t)))) => panic!("expected a pong frame, got text {t}"),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("connection ended instead of pong: {other:?}"),
        }
    }
    sync(&mut c).await;
}

/// Reads for `dur`, answering every `pusher:ping` with `pusher:pong`; fails on close or any
/// other text message. Returns how many pings arrived.
async fn answer_pings_for(c: &mut WsClient, dur: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + dur;
    let mut pings = 0;
    loop {
        match tokio::time::timeout_at(deadline, c.ws.next()).await {
            Err(_) => return pings,
            Ok(Some(Ok(Message::Text(t)))) => {
                let m: Value = serde_json::from_str(t.as_str()).expect("server sends JSON");
                assert_eq!(m["event"], "pusher:ping", "unexpected message {m}");
                pings += 1;
                c.send(json!({"event": "pusher:pong", "data": {}})).await;
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                panic!("connection closed although every ping was answered: {f:?}")
            }
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("connection ended although every ping was answered: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_pinged_and_stays_open_when_it_answers() {
    let server = TestServer::start(&config("activity_timeout = 1\npong_timeout = 1", "")).await;
    let (mut c, _) = server.connect("k").await;
    let pings = answer_pings_for(&mut c, Duration::from_millis(3200)).await;
    assert!(
        pings >= 2,
        "expected a pusher:ping about every second of silence, got {pings} in 3.2 s"
    );
    sync(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_that_does_not_answer_is_closed_4201() {
    let server = TestServer::start(&config("activity_timeout = 1\npong_timeout = 1", "")).await;
    let (mut c, _) = server.connect("k").await;
    let started = tokio::time::Instant::now();
    let m = c
        .try_recv(Duration::from_millis(2500))
        .await
        .expect("a pusher:ping after 1 s of silence");
    assert_eq!(m["event"], "pusher:ping", "{m}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "ping came too early: {:?}",
        started.elapsed()
    );
    match c.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4201, "close code for an unanswered ping"),
        Closed::NoFrame => panic!("expected close 4201, got no close frame"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_ping_frames_count_as_activity() {
    let server = TestServer::start(&config("activity_timeout = 1\npong_timeout = 1", "")).await;
    let (mut c, _) = server.connect("k").await;
    // A WS ping every 300 ms for 2.5 s: the server must never need to send pusher:ping.
    let end = tokio::time::Instant::now() + Duration::from_millis(2500);
    while tokio::time::Instant::now() < end {
        c.ws.send(Message::Ping(bytes::Bytes::from_static(b"x")))
            .await
            .expect("send ping frame");
        let tick = tokio::time::Instant::now() + Duration::from_millis(300);
        loop {
            match tokio::time::timeout_at(tick, c.ws.next()).await {
                Err(_) => break,
                Ok(Some(Ok(Message::Pong(_)))) => continue,
                Ok(Some(Ok(Message::Text(t)))) => {
                    panic!("WS pings are activity; expected no message, got {t}")
                }
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("connection ended while sending WS pings: {other:?}"),
            }
        }
    }
    sync(&mut c).await;
}

// ---------------------------------------------------------------------------------------------
// Malformed frames and size limit
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_text_frames_get_nonfatal_4200() {
    let server = TestServer::dev().await;
    let (mut c, _) = server.connect("app-key").await;
    for bad in [
        "not json at all",
        "{\"event\":",
        "[]",
        "\"a string\"",
        "null",
        "42",
        "{}",
        r#"{"event":5}"#,
        r#"{"event":null,"data":{}}"#,
        r#"{"event":"pusher:subscribe"}"#,
        r#"{"event":"pusher:subscribe","data":{"channel":7}}"#,
        r#"{"event":"pusher:subscribe","data":[]}"#,
        r#"{"event":"pusher:subscribe","data":"not json"}"#,
        r#"{"event":"pusher:subscribe","data":{"channel":"a","auth":5}}"#,
        r#"{"event":"pusher:unsubscribe","data":{}}"#,
        r#"{"event":"pusher:bogus","data":{}}"#,
        r#"{"event":"pusher_internal:member_added","channel":"presence-x","data":"{}"}"#,
    ] {
        c.send_text(bad).await;
        let m = c.recv().await;
        assert_eq!(m["event"], "pusher:error", "frame {bad:?} -> {m}");
        assert_error_code(&m, 4200);
    }
    // Still open and fully usable.
    let ok = c.subscribe("after-garbage", Some(""), None).await;
    assert_succeeded(&ok, "after-garbage");
    trigger(&server, &TestApp::dev(), "after-garbage", "ev", "{\"x\":1}").await;
    let m = c.expect_event("ev").await;
    assert_eq!(m["data"], "{\"x\":1}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frame_gets_nonfatal_4200() {
    let server = TestServer::dev().await;
    let (mut c, _) = server.connect("app-key").await;
    c.ws.send(Message::Binary(bytes::Bytes::from_static(
        br#"{"event":"pusher:ping","data":{}}"#,
    )))
    .await
    .expect("send binary");
    let m = c.recv().await;
    assert_error_code(&m, 4200);
    let ok = c.subscribe("after-binary", Some(""), None).await;
    assert_succeeded(&ok, "after-binary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_over_max_message_size_closes_1009() {
    let server = TestServer::start(&config("max_message_size = 2048", "")).await;
    let (mut c, _) = server.connect("k").await;
    // Under the limit: fine.
    let pad = "p".repeat(1500);
    c.send(json!({"event": "pusher:ping", "data": {"pad": pad}}))
        .await;
    let m = c.recv().await;
    assert_eq!(m["event"], "pusher:pong", "{m}");
    // Over the limit: close 1009.
    let pad = "p".repeat(3000);
    c.send(json!({"event": "pusher:ping", "data": {"pad": pad}}))
        .await;
    match c.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 1009, "close code for an oversized frame"),
        Closed::NoFrame => panic!("expected close 1009, got no close frame"),
    }
}
