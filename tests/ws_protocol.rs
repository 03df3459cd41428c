mod common;
use common::*;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A config with one app `1`/`k`/`s` plus `extra` lines inside that app's table, after
/// `server` lines at the top level.
fn config(server: &str, app_extra: &str) -> String {
    format!(
        "{server}\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenable_client_messages = true\n{app_extra}\n"
    )
}

/// The pusher-js query string.
const JS_QUERY: &str = "?protocol=7&client=js&version=8.4.0&flash=false";

/// `^\d+\.\d+$` without a regex crate.
fn is_socket_id(s: &str) -> bool {
    match s.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// The next text frame, as the raw string the server wrote.
async fn recv_raw_text(c: &mut WsClient) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, c.ws.next()).await {
            Err(_) => panic!("no text frame in time"),
            Ok(Some(Ok(Message::Text(t)))) => return t.as_str().to_string(),
            Ok(Some(Ok(Message::Close(f)))) => panic!("closed while waiting for text: {f:?}"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => panic!("read error while waiting for text: {e}"),
            Ok(None) => panic!("stream ended while waiting for text"),
        }
    }
}

/// Asserts `m` is `pusher:subscription_error` for `channel` with the given type and status,
/// with `data` as an object (not a string) and a non-empty `error` text.
fn assert_sub_error(m: &Value, channel: &str, kind: &str, status: u64) {
    assert_eq!(m["event"], "pusher:subscription_error", "{m}");
    assert_eq!(m["channel"], channel, "{m}");
    assert!(
        m["data"].is_object(),
        "subscription_error data must be an object: {m}"
    );
    assert_eq!(m["data"]["type"], kind, "{m}");
    assert_eq!(m["data"]["status"], status, "{m}");
    assert!(
        m["data"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "error text expected: {m}"
    );
}

/// Asserts a non-fatal `pusher:error` with `code` and an object `data`.
fn assert_error_code(m: &Value, code: u64) {
    assert_eq!(m["event"], "pusher:error", "{m}");
    assert!(
        m["data"].is_object(),
        "pusher:error data must be an object: {m}"
    );
    assert_eq!(m["data"]["code"], code, "{m}");
    assert!(
        m["data"]["message"].as_str().is_some_and(|e| !e.is_empty()),
        "message text expected: {m}"
    );
}

/// The decoded `presence` object of a presence `subscription_succeeded`; asserts `data` is a
/// JSON string (double encoding).
fn presence_of(m: &Value) -> Value {
    assert!(
        m["data"].is_string(),
        "presence subscription_succeeded data must be a JSON string: {m}"
    );
    decode_data(m)["presence"].clone()
}

/// Connects with `query` and expects a fatal error: first `pusher:error` with `code`, then a
/// close frame with the same code.
async fn expect_fatal(server: &TestServer, key: &str, query: &str, code: u16) {
    let mut c = WsClient::connect(&server.ws_url(key, query)).await;
    let m = c.recv().await;
    assert_error_code(&m, u64::from(code));
    match c.closed().await {
        Closed::Code(got, reason) => {
            assert_eq!(got, code, "close code (reason {reason:?})");
            assert!(!reason.is_empty(), "close reason should say why");
        }
        Closed::NoFrame => panic!("expected close frame {code}, got no close frame"),
    }
}

async fn get_json(server: &TestServer, app: &TestApp, sub: &str) -> Value {
    let path = format!("/apps/{}/{sub}", app.id);
    let (status, body) = server.api(app, "GET", &path, &[], "").await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

// ---------------------------------------------------------------------------------------------
// connection_established
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_established_has_string_data_with_socket_id_and_activity_timeout() {
    let server = TestServer::start(&config("activity_timeout = 42", "")).await;
    let mut c = WsClient::connect(&server.ws_url("k", JS_QUERY)).await;
    let m = c.recv().await;
    assert_eq!(m["event"], "pusher:connection_established", "{m}");
    assert!(
        m["data"].is_string(),
        "connection_established data must be a JSON string: {m}"
    );
    let data = decode_data(&m);
    let sid = data["socket_id"].as_str().expect("socket_id is a string");
    assert!(
        is_socket_id(sid),
        "socket_id {sid:?} must match ^\\d+\\.\\d+$"
    );
    assert_eq!(data["activity_timeout"], 42, "{m}");

    // A second connection gets a different, equally well-formed id.
    let (_c2, sid2) = server.connect("k").await;
    assert!(is_socket_id(&sid2), "{sid2:?}");
    assert_ne!(sid, sid2, "socket ids must be unique");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_established_default_activity_timeout_is_120() {
    let server = TestServer::dev().await;
    let mut c = WsClient::connect(&server.ws_url("app-key", JS_QUERY)).await;
    let m = c.recv().await;
    assert_eq!(m["event"], "pusher:connection_established", "{m}");
    assert_eq!(decode_data(&m)["activity_timeout"], 120, "{m}");
}

// ---------------------------------------------------------------------------------------------
// Fatal connect errors
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_app_key_is_error_then_close_4001() {
    let server = TestServer::start(&config("", "")).await;
    expect_fatal(&server, "no-such-key", JS_QUERY, 4001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_app_is_error_then_close_4003() {
    let toml = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenabled = false\n\
                [[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"s2\"\n";
    let server = TestServer::start(toml).await;
    expect_fatal(&server, "k", JS_QUERY, 4003).await;
    // The other, enabled app still works.
    let (_c, sid) = server.connect("k2").await;
    assert!(is_socket_id(&sid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_connection_quota_is_error_then_close_4004_and_quota_is_released() {
    let server = TestServer::start(&config("", "max_connections = 1")).await;
    let (c1, _) = server.connect("k").await;
    expect_fatal(&server, "k", JS_QUERY, 4004).await;

    // The refused connection must not have taken the slot, and the first one frees it on drop.
    drop(c1);
    let app = app1();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let n = get_json(&server, &app, "connections").await["connections"].clone();
        if n == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections never went back to 0 (now {n})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_c3, sid) = server.connect("k").await;
    assert!(is_socket_id(&sid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_3_is_error_then_close_4007() {
    let server = TestServer::start(&config("", "")).await;
    expect_fatal(&server, "k", "?protocol=3&client=js&version=1.0", 4007).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_not_a_number_is_error_then_close_4007() {
    let server = TestServer::start(&config("", "")).await;
    expect_fatal(&server, "k", "?protocol=abc", 4007).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_8_is_error_then_close_4007() {
    let server = TestServer::start(&config("", "")).await;
    expect_fatal(&server, "k", "?protocol=8", 4007).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocols_5_6_7_and_missing_are_accepted() {
    let server = TestServer::start(&config("", "")).await;
    for query in [
        "?protocol=5",
        "?protocol=6&client=python",
        "?protocol=7",
        "",
        "?client=js&version=8.4.0",
    ] {
        let mut c = WsClient::connect(&server.ws_url("k", query)).await;
        let m = c.recv().await;
        assert_eq!(
            m["event"], "pusher:connection_established",
            "query {query:?}: {m}"
        );
        // And the connection is really usable.
        sync(&mut c).await;
    }
}

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

// ---------------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_subscribe_succeeds_with_string_empty_object_data() {
    let server = TestServer::dev().await;
    let (mut c, _) = server.connect("app-key").await;
    let ok = c.subscribe("news", Some(""), None).await;
    assert_succeeded(&ok, "news");
    assert_eq!(ok["data"], "{}", "public subscription_succeeded data: {ok}");
    // Without any auth key at all, too.
    let ok = c.subscribe("news-2", None, None).await;
    assert_succeeded(&ok, "news-2");
    trigger(&server, &TestApp::dev(), "news", "flash", "\"hello\"").await;
    let m = c.recv().await;
    assert_eq!(m["event"], "flash", "{m}");
    assert_eq!(m["channel"], "news", "{m}");
    assert_eq!(m["data"], "\"hello\"", "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_subscribe_with_correct_auth_succeeds_and_receives() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let (mut c, sid) = server.connect("k").await;
    let ok = sub_private(&mut c, &app, &sid, "private-App.Models.User.1").await;
    assert_succeeded(&ok, "private-App.Models.User.1");
    assert_eq!(ok["data"], "{}", "{ok}");
    trigger(
        &server,
        &app,
        "private-App.Models.User.1",
        "App\\Events\\OrderShipped",
        "{\"id\":7}",
    )
    .await;
    let m = c.recv().await;
    assert_eq!(m["event"], "App\\Events\\OrderShipped", "{m}");
    assert_eq!(m["data"], "{\"id\":7}", "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_subscribe_with_bad_or_missing_auth_is_auth_error_401_and_connection_survives() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let (mut c, sid) = server.connect("k").await;
    let ch = "private-secret";
    let good = channel_auth(&app, &sid, ch, None);
    let wrong_secret = channel_auth(&TestApp::new("1", "k", "not-s"), &sid, ch, None);
    let other_socket = channel_auth(&app, "1.1", ch, None);
    let other_channel = channel_auth(&app, &sid, "private-other", None);
    let wrong_key = good.replacen("k:", "other:", 1);
    let no_colon = good.replacen("k:", "", 1);
    for (what, auth) in [
        ("missing", None),
        ("empty", Some("")),
        ("wrong secret", Some(wrong_secret.as_str())),
        ("other socket", Some(other_socket.as_str())),
        ("other channel", Some(other_channel.as_str())),
        ("wrong key", Some(wrong_key.as_str())),
        ("no key part", Some(no_colon.as_str())),
        ("garbage", Some("k:zzzz")),
    ] {
        let m = c.subscribe(ch, auth, None).await;
        assert_eq!(
            m["event"], "pusher:subscription_error",
            "{what} auth must be refused: {m}"
        );
        assert_sub_error(&m, ch, "AuthError", 401);
    }
    // Not subscribed: a trigger does not reach it.
    trigger(&server, &app, ch, "leak", "{}").await;
    c.expect_silence(Duration::from_millis(300)).await;
    // The connection is still usable, and the right signature works.
    let ok = c.subscribe(ch, Some(&good), None).await;
    assert_succeeded(&ok, ch);
    trigger(&server, &app, ch, "ok", "{}").await;
    let m = c.recv().await;
    assert_eq!(m["event"], "ok", "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_encrypted_works_like_private_and_forwards_payload_byte_for_byte() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let (mut c, sid) = server.connect("k").await;
    let ch = "private-encrypted-doc";
    let m = c.subscribe(ch, Some("k:deadbeef"), None).await;
    assert_sub_error(&m, ch, "AuthError", 401);
    let ok = sub_private(&mut c, &app, &sid, ch).await;
    assert_succeeded(&ok, ch);

    // Escapes a re-serialization would change: \u00e9 and \/.
    let body = r#"{"name":"secret","channel":"private-encrypted-doc","data":"{\"nonce\":\"bm9uY2U+Lw==\",\"ciphertext\":\"\u00e9\/x+y==\"}"}"#;
    trigger_raw(&server, &app, body).await;
    let raw = recv_raw_text(&mut c).await;
    let literal = r#""{\"nonce\":\"bm9uY2U+Lw==\",\"ciphertext\":\"\u00e9\/x+y==\"}""#;
    assert!(
        raw.contains(&format!("\"data\":{literal}")),
        "data must be forwarded byte for byte; frame was {raw}"
    );
    let m: Value = serde_json::from_str(&raw).expect("frame is JSON");
    assert_eq!(m["event"], "secret");
    assert_eq!(m["channel"], ch);
    assert_eq!(
        m["data"],
        "{\"nonce\":\"bm9uY2U+Lw==\",\"ciphertext\":\"\u{e9}/x+y==\"}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_channel_names_are_invalid_channel_4009() {
    let server = TestServer::dev().await;
    let (mut c, _) = server.connect("app-key").await;
    let long = "x".repeat(201);
    for name in [
        "foo bar",
        "#foo",
        "#server-to-userX",
        "caf\u{e9}",
        "a/b",
        "",
        long.as_str(),
    ] {
        let m = c.subscribe(name, Some(""), None).await;
        assert_eq!(
            m["event"], "pusher:subscription_error",
            "channel {name:?} must be refused: {m}"
        );
        assert_sub_error(&m, name, "InvalidChannel", 4009);
    }
    // 200 characters is the limit and is fine; so is every allowed punctuation character.
    let max = "y".repeat(200);
    let ok = c.subscribe(&max, Some(""), None).await;
    assert_succeeded(&ok, &max);
    let ok = c.subscribe("a=b@c,d;e_f-g.h", Some(""), None).await;
    assert_succeeded(&ok, "a=b@c,d;e_f-g.h");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery() {
    let server = TestServer::dev().await;
    let app = TestApp::dev();
    let (mut c, _) = server.connect("app-key").await;
    let ok = c.subscribe("ticker", Some(""), None).await;
    assert_succeeded(&ok, "ticker");
    trigger(&server, &app, "ticker", "tick", "1").await;
    let m = c.recv().await;
    assert_eq!(m["event"], "tick", "{m}");

    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "ticker"}}))
        .await;
    sync(&mut c).await; // unsubscribe has been processed (and produced no reply)
    trigger(&server, &app, "ticker", "tick", "2").await;
    c.expect_silence(Duration::from_millis(500)).await;
    // Unsubscribing from something never subscribed is silent and harmless.
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "never"}}))
        .await;
    sync(&mut c).await;
}

// ---------------------------------------------------------------------------------------------
// Presence
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_subscription_succeeded_lists_members_including_self() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-room";
    let (mut c1, sid1) = server.connect("k").await;
    let ok = sub_presence(
        &mut c1,
        &app,
        &sid1,
        ch,
        r#"{"user_id":"u1","user_info":{"name":"Ann"}}"#,
    )
    .await;
    assert_succeeded(&ok, ch);
    let p = presence_of(&ok);
    assert_eq!(p["ids"], json!(["u1"]), "{ok}");
    assert_eq!(p["hash"], json!({"u1": {"name": "Ann"}}), "{ok}");
    assert_eq!(p["count"], 1, "{ok}");

    let (mut c2, sid2) = server.connect("k").await;
    let ok = sub_presence(
        &mut c2,
        &app,
        &sid2,
        ch,
        r#"{"user_id":"u2","user_info":{"name":"Bob"}}"#,
    )
    .await;
    let p = presence_of(&ok);
    assert_eq!(p["count"], 2, "{ok}");
    let mut ids: Vec<String> = p["ids"]
        .as_array()
        .expect("ids array")
        .iter()
        .map(|v| v.as_str().expect("string id").to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["u1", "u2"], "{ok}");
    assert_eq!(
        p["hash"],
        json!({"u1": {"name": "Ann"}, "u2": {"name": "Bob"}}),
        "{ok}"
    );

    // The first member hears about the second.
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_added", "{m}");
    assert_eq!(m["channel"], ch, "{m}");
    assert!(
        m["data"].is_string(),
        "member_added data must be a string: {m}"
    );
    assert_eq!(
        decode_data(&m),
        json!({"user_id": "u2", "user_info": {"name": "Bob"}}),
        "{m}"
    );
    // The joiner does not hear about itself.
    c2.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_bad_signature_or_channel_data_is_auth_error() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-room";
    let (mut c, sid) = server.connect("k").await;
    let data = r#"{"user_id":"u1"}"#;
    // Signed without channel_data (as for a private channel).
    let auth = channel_auth(&app, &sid, ch, None);
    let m = c.subscribe(ch, Some(&auth), Some(data)).await;
    assert_sub_error(&m, ch, "AuthError", 401);
    // Signed over other channel_data than sent.
    let auth = channel_auth(&app, &sid, ch, Some(r#"{"user_id":"admin"}"#));
    let m = c.subscribe(ch, Some(&auth), Some(data)).await;
    assert_sub_error(&m, ch, "AuthError", 401);
    // Correct.
    let ok = sub_presence(&mut c, &app, &sid, ch, data).await;
    assert_succeeded(&ok, ch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_same_user_on_two_connections_is_one_member() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-chat.1";
    let (mut c1, sid1) = server.connect("k").await;
    sub_presence(&mut c1, &app, &sid1, ch, r#"{"user_id":"u1"}"#).await;

    let bob = r#"{"user_id":"u2","user_info":{"name":"Bob"}}"#;
    let (mut c2, sid2) = server.connect("k").await;
    assert_succeeded(&sub_presence(&mut c2, &app, &sid2, ch, bob).await, ch);
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_added", "{m}");
    assert_eq!(decode_data(&m)["user_id"], "u2", "{m}");

    // Bob again, from a second tab: no second member_added, and still 2 members.
    let (mut c3, sid3) = server.connect("k").await;
    let ok = sub_presence(&mut c3, &app, &sid3, ch, bob).await;
    assert_succeeded(&ok, ch);
    let p = presence_of(&ok);
    assert_eq!(p["count"], 2, "same user twice is one member: {ok}");
    assert_eq!(p["ids"].as_array().map(Vec::len), Some(2), "{ok}");
    c1.expect_silence(Duration::from_millis(400)).await;
    c2.expect_silence(Duration::from_millis(100)).await;

    // Bob's first tab leaves by unsubscribing: Bob is still there.
    c2.send(json!({"event": "pusher:unsubscribe", "data": {"channel": ch}}))
        .await;
    sync(&mut c2).await;
    c1.expect_silence(Duration::from_millis(400)).await;

    // Bob's last tab drops: now member_removed, once.
    drop(c3);
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_removed", "{m}");
    assert_eq!(m["channel"], ch, "{m}");
    assert!(
        m["data"].is_string(),
        "member_removed data must be a string: {m}"
    );
    assert_eq!(decode_data(&m), json!({"user_id": "u2"}), "{m}");
    c1.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_member_removed_on_unsubscribe_of_last_connection() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-lobby";
    let (mut c1, sid1) = server.connect("k").await;
    sub_presence(&mut c1, &app, &sid1, ch, r#"{"user_id":"u1"}"#).await;
    let (mut c2, sid2) = server.connect("k").await;
    sub_presence(&mut c2, &app, &sid2, ch, r#"{"user_id":"u2"}"#).await;
    assert_eq!(c1.recv().await["event"], "pusher_internal:member_added");

    c2.send(json!({"event": "pusher:unsubscribe", "data": {"channel": ch}}))
        .await;
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_removed", "{m}");
    assert_eq!(decode_data(&m), json!({"user_id": "u2"}), "{m}");
    // The one who left gets nothing about itself.
    sync(&mut c2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_numeric_user_id_stays_a_number() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-nums";
    let (mut c1, sid1) = server.connect("k").await;
    let ok = sub_presence(
        &mut c1,
        &app,
        &sid1,
        ch,
        r#"{"user_id":42,"user_info":{"n":1}}"#,
    )
    .await;
    let p = presence_of(&ok);
    assert_eq!(p["ids"], json!([42]), "numeric id must stay a number: {ok}");
    assert_eq!(
        p["hash"],
        json!({"42": {"n": 1}}),
        "hash key is the string form: {ok}"
    );

    let (mut c2, sid2) = server.connect("k").await;
    let ok = sub_presence(
        &mut c2,
        &app,
        &sid2,
        ch,
        r#"{"user_id":7,"user_info":{"n":2}}"#,
    )
    .await;
    let p = presence_of(&ok);
    let mut ids: Vec<i64> = p["ids"]
        .as_array()
        .expect("ids array")
        .iter()
        .map(|v| v.as_i64().expect("ids stay numbers"))
        .collect();
    ids.sort();
    assert_eq!(ids, [7, 42], "{ok}");
    assert_eq!(p["hash"], json!({"42": {"n": 1}, "7": {"n": 2}}), "{ok}");

    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_added", "{m}");
    assert_eq!(
        decode_data(&m),
        json!({"user_id": 7, "user_info": {"n": 2}}),
        "{m}"
    );

    drop(c2);
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_removed", "{m}");
    assert_eq!(decode_data(&m), json!({"user_id": 7}), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_hash_is_always_an_object() {
    // An empty member list cannot be seen over the WebSocket (the subscriber is always in it),
    // so this checks the case that makes PHP servers emit `[]`: a numeric id 0, no user_info.
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-zero";
    let (mut c, sid) = server.connect("k").await;
    let ok = sub_presence(&mut c, &app, &sid, ch, r#"{"user_id":0}"#).await;
    let p = presence_of(&ok);
    assert!(p["hash"].is_object(), "hash must be an object: {ok}");
    assert!(
        p["hash"].get("0").is_some(),
        "hash key \"0\" expected: {ok}"
    );
    assert_eq!(p["ids"], json!([0]), "{ok}");
    assert_eq!(p["count"], 1, "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_member_limit_is_limit_reached_4004_but_same_user_may_add_connections() {
    let server = TestServer::start(&config("", "max_presence_members_per_channel = 1")).await;
    let app = app1();
    let ch = "presence-tiny";
    let (mut c1, sid1) = server.connect("k").await;
    assert_succeeded(
        &sub_presence(&mut c1, &app, &sid1, ch, r#"{"user_id":"u1"}"#).await,
        ch,
    );

    let (mut c2, sid2) = server.connect("k").await;
    let m = sub_presence(&mut c2, &app, &sid2, ch, r#"{"user_id":"u2"}"#).await;
    assert_sub_error(&m, ch, "LimitReached", 4004);
    // Nobody was told about u2.
    c1.expect_silence(Duration::from_millis(300)).await;
    // c2 is still usable.
    assert_succeeded(
        &c2.subscribe("public-ok", Some(""), None).await,
        "public-ok",
    );

    // u1 from another connection is not a new member.
    let (mut c3, sid3) = server.connect("k").await;
    let ok = sub_presence(&mut c3, &app, &sid3, ch, r#"{"user_id":"u1"}"#).await;
    assert_succeeded(&ok, ch);
    assert_eq!(presence_of(&ok)["count"], 1, "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_member_data_too_big_is_limit_reached_4301() {
    let server = TestServer::start(&config("", "max_presence_member_size = 100")).await;
    let app = app1();
    let ch = "presence-big";
    let (mut c, sid) = server.connect("k").await;
    let big = json!({"user_id": "u1", "user_info": {"bio": "b".repeat(200)}}).to_string();
    let m = sub_presence(&mut c, &app, &sid, ch, &big).await;
    assert_sub_error(&m, ch, "LimitReached", 4301);
    // Small data on the same connection is fine.
    let ok = sub_presence(
        &mut c,
        &app,
        &sid,
        ch,
        r#"{"user_id":"u1","user_info":{"bio":"b"}}"#,
    )
    .await;
    assert_succeeded(&ok, ch);
}

// ---------------------------------------------------------------------------------------------
// Cache channels
// ---------------------------------------------------------------------------------------------

/// Subscribes to any kind of channel with the right credentials for it.
async fn sub_any(c: &mut WsClient, app: &TestApp, sid: &str, channel: &str, user: &str) -> Value {
    if channel.starts_with("presence-") {
        let data = json!({"user_id": user}).to_string();
        sub_presence(c, app, sid, channel, &data).await
    } else if channel.starts_with("private-") {
        sub_private(c, app, sid, channel).await
    } else {
        c.subscribe(channel, Some(""), None).await
    }
}

async fn cache_channel_flow(channel: &str) {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();

    // Empty: cache_miss right after subscription_succeeded, without data.
    let (mut c1, sid1) = server.connect("k").await;
    let ok = sub_any(&mut c1, &app, &sid1, channel, "u1").await;
    assert_succeeded(&ok, channel);
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher:cache_miss", "{m}");
    assert_eq!(m["channel"], channel, "{m}");
    assert!(
        m.get("data").is_none(),
        "cache_miss must have no data key: {m}"
    );

    // A trigger reaches the subscriber and is cached.
    trigger(&server, &app, channel, "price", "{\"v\":1}").await;
    let m = c1.recv().await;
    assert_eq!(m["event"], "price", "{m}");
    trigger(&server, &app, channel, "price", "{\"v\":2}").await;
    let m = c1.recv().await;
    assert_eq!(m["data"], "{\"v\":2}", "{m}");

    // A new subscriber gets the last event at once, and no cache_miss.
    let (mut c2, sid2) = server.connect("k").await;
    let ok = sub_any(&mut c2, &app, &sid2, channel, "u1").await;
    assert_succeeded(&ok, channel);
    let m = c2.recv().await;
    assert_eq!(m["event"], "price", "cached event expected first: {m}");
    assert_eq!(m["channel"], channel, "{m}");
    assert_eq!(m["data"], "{\"v\":2}", "the last event, byte for byte: {m}");
    c2.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_public_channel_miss_then_replay() {
    cache_channel_flow("cache-prices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_private_channel_miss_then_replay() {
    cache_channel_flow("private-cache-prices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_presence_channel_miss_then_replay() {
    cache_channel_flow("presence-cache-prices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_private_encrypted_channel_miss_then_replay() {
    cache_channel_flow("private-encrypted-cache-prices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_cache_channels_get_no_cache_miss_or_replay() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    trigger(&server, &app, "plain", "old", "{}").await;
    trigger(&server, &app, "cachex", "old", "{}").await;
    let (mut c, _) = server.connect("k").await;
    assert_succeeded(&c.subscribe("plain", Some(""), None).await, "plain");
    assert_succeeded(&c.subscribe("cachex", Some(""), None).await, "cachex");
    c.expect_silence(Duration::from_millis(300)).await;
}

// ---------------------------------------------------------------------------------------------
// Disconnect cleanup and app isolation
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_removes_channels_and_connection() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let (mut c, sid) = server.connect("k").await;
    assert_succeeded(&c.subscribe("room-a", Some(""), None).await, "room-a");
    assert_succeeded(
        &sub_private(&mut c, &app, &sid, "private-b").await,
        "private-b",
    );
    assert_succeeded(
        &sub_presence(&mut c, &app, &sid, "presence-c", r#"{"user_id":"u1"}"#).await,
        "presence-c",
    );
    let list = get_json(&server, &app, "channels").await;
    let names: Vec<&String> = list["channels"]
        .as_object()
        .expect("channels object")
        .keys()
        .collect();
    assert_eq!(names.len(), 3, "{list}");
    for ch in ["room-a", "private-b", "presence-c"] {
        assert!(list["channels"].get(ch).is_some(), "{ch} missing: {list}");
    }
    assert_eq!(
        get_json(&server, &app, "connections").await["connections"],
        1
    );

    drop(c);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let list = get_json(&server, &app, "channels").await;
        let conns = get_json(&server, &app, "connections").await;
        if list == json!({"channels": {}}) && conns == json!({"connections": 0}) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after drop: channels {list}, connections {conns}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let users = get_json(&server, &app, "channels/presence-c/users").await;
    assert_eq!(users, json!({"users": []}), "presence members after drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_isolated() {
    let toml = "[[apps]]\nid = \"a\"\nkey = \"ka\"\nsecret = \"sa\"\n\
                [[apps]]\nid = \"b\"\nkey = \"kb\"\nsecret = \"sb\"\n";
    let server = TestServer::start(toml).await;
    let a = TestApp::new("a", "ka", "sa");
    let b = TestApp::new("b", "kb", "sb");
    let (mut ca, _) = server.connect("ka").await;
    let (mut cb, _) = server.connect("kb").await;
    assert_succeeded(&ca.subscribe("shared", Some(""), None).await, "shared");
    assert_succeeded(&cb.subscribe("shared", Some(""), None).await, "shared");

    trigger(&server, &b, "shared", "for-b", "\"b\"").await;
    let m = cb.recv().await;
    assert_eq!(m["event"], "for-b", "{m}");
    ca.expect_silence(Duration::from_millis(400)).await;

    trigger(&server, &a, "shared", "for-a", "\"a\"").await;
    let m = ca.recv().await;
    assert_eq!(m["event"], "for-a", "{m}");
    cb.expect_silence(Duration::from_millis(400)).await;

    // Counts are per app too.
    assert_eq!(get_json(&server, &a, "connections").await["connections"], 1);
    drop(cb);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while get_json(&server, &b, "connections").await["connections"] != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "app b never emptied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get_json(&server, &a, "connections").await["connections"], 1);
    assert!(
        get_json(&server, &a, "channels").await["channels"]
            .get("shared")
            .is_some(),
        "app a's channel must survive app b's subscriber leaving"
    );
}
