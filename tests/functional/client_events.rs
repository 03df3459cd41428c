use crate::common::*;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// One app with client messages on; `extra` adds app keys.
fn config(extra: &str) -> String {
    format!("[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\nenable_client_messages=true\n{extra}")
}

async fn whisper(c: &mut WsClient, channel: &str, event: &str, data: Value) {
    c.send(json!({"event": event, "channel": channel, "data": data}))
        .await;
}

/// Triggers `marker` on `channel` through the HTTP API.
async fn marker(server: &TestServer, app: &TestApp, channel: &str) {
    trigger(server, app, channel, "marker", "m").await;
}

/// Asserts the next message is a non-fatal client-event rejection for `channel`.
async fn expect_rejection(c: &mut WsClient, channel: &str) -> Value {
    let m = c.recv().await;
    assert_eq!(m["event"], "pusher:error", "expected a rejection, got {m}");
    assert_eq!(m["channel"], channel, "{m}");
    let data = decode_data(&m);
    assert_eq!(data["code"], 4301, "{m}");
    assert!(
        data["message"].as_str().is_some_and(|s| !s.is_empty()),
        "{m}"
    );
    // The connection stays usable.
    sync(c).await;
    m
}

/// Asserts that `other` got nothing but the marker triggered afterwards.
async fn nothing_delivered(server: &TestServer, app: &TestApp, other: &mut WsClient, ch: &str) {
    marker(server, app, ch).await;
    next_is(other, "marker").await;
}

// ---------------------------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_on_private_channel_reaches_others_but_not_sender() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let ch = "private-chat.1";
    let (mut a, _) = private_sub(&server, &app, ch).await;
    let (mut b, _) = private_sub(&server, &app, ch).await;
    let (mut c, _) = private_sub(&server, &app, ch).await;
    let data = json!({"typing": true, "nested": {"list": [1, "two", null]}, "n": 1.5});
    whisper(&mut a, ch, "client-typing", data.clone()).await;
    for other in [&mut b, &mut c] {
        let m = next_is(other, "client-typing").await;
        assert_eq!(m["channel"], ch);
        assert!(
            m["data"].is_object(),
            "object data must stay an object: {m}"
        );
        assert_eq!(m["data"], data);
        assert!(
            m.get("user_id").is_none(),
            "no user_id on private channels: {m}"
        );
    }
    // The sender's next message is the marker, not its own whisper.
    marker(&server, &app, ch).await;
    next_is(&mut a, "marker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_on_presence_channel_carries_user_id_of_the_same_type() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let ch = "presence-room";
    let (mut num, _) = presence_sub(
        &server,
        &app,
        ch,
        r#"{"user_id":5,"user_info":{"name":"n"}}"#,
    )
    .await;
    let (mut text, _) = presence_sub(&server, &app, ch, r#"{"user_id":"u2"}"#).await;
    let m = next_is(&mut num, "pusher_internal:member_added").await;
    assert_eq!(decode_data(&m)["user_id"], "u2");

    whisper(&mut num, ch, "client-hello", json!({"from": "num"})).await;
    let m = next_is(&mut text, "client-hello").await;
    assert_eq!(m["channel"], ch);
    assert_eq!(m["data"], json!({"from": "num"}));
    assert_eq!(
        m["user_id"],
        json!(5),
        "numeric user_id stays a number: {m}"
    );

    whisper(&mut text, ch, "client-hello", json!({"from": "text"})).await;
    let m = next_is(&mut num, "client-hello").await;
    assert_eq!(m["data"], json!({"from": "text"}));
    assert_eq!(
        m["user_id"],
        json!("u2"),
        "string user_id stays a string: {m}"
    );

    // Neither sender got its own whisper.
    marker(&server, &app, ch).await;
    next_is(&mut num, "marker").await;
    next_is(&mut text, "marker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_string_data_is_forwarded_as_sent() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let ch = "private-s";
    let (mut a, _) = private_sub(&server, &app, ch).await;
    let (mut b, _) = private_sub(&server, &app, ch).await;
    whisper(&mut a, ch, "client-s", json!("plain text")).await;
    let m = next_is(&mut b, "client-s").await;
    assert_eq!(m["data"], "plain text");
}

// ---------------------------------------------------------------------------------------------
// Rejections
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_when_client_messages_are_disabled() {
    let server = TestServer::start("[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\n").await;
    let app = app1();
    let ch = "private-off";
    let (mut a, _) = private_sub(&server, &app, ch).await;
    let (mut b, _) = private_sub(&server, &app, ch).await;
    whisper(&mut a, ch, "client-typing", json!({})).await;
    expect_rejection(&mut a, ch).await;
    nothing_delivered(&server, &app, &mut b, ch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_on_public_channel() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let ch = "public-room";
    let (mut a, _) = public_sub(&server, "k", ch).await;
    let (mut b, _) = public_sub(&server, "k", ch).await;
    whisper(&mut a, ch, "client-typing", json!({})).await;
    expect_rejection(&mut a, ch).await;
    nothing_delivered(&server, &app, &mut b, ch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_when_not_subscribed() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let ch = "private-members";
    let (mut outsider, _) = private_sub(&server, &app, "private-elsewhere").await;
    let (mut b, _) = private_sub(&server, &app, ch).await;
    whisper(&mut outsider, ch, "client-typing", json!({})).await;
    expect_rejection(&mut outsider, ch).await;
    // After unsubscribing, the connection is no longer allowed either.
    let (mut left, _) = private_sub(&server, &app, ch).await;
    left.send(json!({"event": "pusher:unsubscribe", "data": {"channel": ch}}))
        .await;
    sync(&mut left).await;
    whisper(&mut left, ch, "client-typing", json!({})).await;
    expect_rejection(&mut left, ch).await;
    nothing_delivered(&server, &app, &mut b, ch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_on_encrypted_channel() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let ch = "private-encrypted-secret";
    let (mut a, _) = private_sub(&server, &app, ch).await;
    let (mut b, _) = private_sub(&server, &app, ch).await;
    whisper(
        &mut a,
        ch,
        "client-typing",
        json!({"nonce": "x", "ciphertext": "y"}),
    )
    .await;
    expect_rejection(&mut a, ch).await;
    nothing_delivered(&server, &app, &mut b, ch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_without_client_prefix() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let ch = "private-prefix";
    let (mut a, _) = private_sub(&server, &app, ch).await;
    let (mut b, _) = private_sub(&server, &app, ch).await;
    for name in ["typing", "App\\Events\\Foo", "Client-typing"] {
        whisper(&mut a, ch, name, json!({})).await;
        expect_rejection(&mut a, ch).await;
    }
    nothing_delivered(&server, &app, &mut b, ch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_when_event_name_too_long() {
    let server = TestServer::start(&config("max_event_name_length=20")).await;
    let app = app1();
    let ch = "private-long";
    let (mut a, _) = private_sub(&server, &app, ch).await;
    let (mut b, _) = private_sub(&server, &app, ch).await;
    let long = format!("client-{}", "x".repeat(14));
    assert_eq!(long.len(), 21);
    whisper(&mut a, ch, &long, json!({})).await;
    expect_rejection(&mut a, ch).await;
    let fits = format!("client-{}", "x".repeat(13));
    whisper(&mut a, ch, &fits, json!({})).await;
    let m = b.recv().await;
    assert_eq!(m["event"], fits, "the 20-character name is allowed: {m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_when_data_too_large() {
    let server = TestServer::start(&config("max_event_payload_size=100")).await;
    let app = app1();
    let ch = "private-big";
    let (mut a, _) = private_sub(&server, &app, ch).await;
    let (mut b, _) = private_sub(&server, &app, ch).await;
    whisper(&mut a, ch, "client-big", json!({"t": "x".repeat(200)})).await;
    expect_rejection(&mut a, ch).await;
    nothing_delivered(&server, &app, &mut b, ch).await;
    whisper(&mut a, ch, "client-small", json!({"t": "x".repeat(50)})).await;
    next_is(&mut b, "client-small").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_over_the_rate_limit_then_allowed_again() {
    let server = TestServer::start(&config("max_client_events_per_second=2")).await;
    let app = app1();
    let ch = "private-rate";
    let (mut a, _) = private_sub(&server, &app, ch).await;
    let (mut b, _) = private_sub(&server, &app, ch).await;
    let start = Instant::now();
    for i in 0..3 {
        whisper(&mut a, ch, "client-n", json!({"i": i})).await;
    }
    expect_rejection(&mut a, ch).await;
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "test too slow to check a one-second window"
    );
    let m = next_is(&mut b, "client-n").await;
    assert_eq!(m["data"], json!({"i": 0}));
    let m = next_is(&mut b, "client-n").await;
    assert_eq!(m["data"], json!({"i": 1}));
    nothing_delivered(&server, &app, &mut b, ch).await;
    next_is(&mut a, "marker").await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    whisper(&mut a, ch, "client-n", json!({"i": 3})).await;
    let m = next_is(&mut b, "client-n").await;
    assert_eq!(m["data"], json!({"i": 3}));
    // No error for the allowed one: the sender's next message is the pong.
    sync(&mut a).await;
}

// ---------------------------------------------------------------------------------------------
// pusher:signin and #server-to-user-
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_success_echoes_user_data() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let (mut c, sid) = server.connect("k").await;
    signin_ok(
        &mut c,
        &app,
        &sid,
        r#"{"id":"42","user_info":{"name":"Zoë"},"watchlist":[]}"#,
    )
    .await;
    sync(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_with_bad_signature_is_error_4009_and_connection_stays() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let (mut c, sid) = server.connect("k").await;
    let user_data = r#"{"id":"42"}"#;
    let wrong_secret = TestApp::new("1", "k", "not-the-secret");
    for auth in [
        user_auth(&wrong_secret, &sid, user_data),
        user_auth(&app, "1.1", user_data),
        user_auth(&app, &sid, r#"{"id":"43"}"#),
        String::new(),
        "k:".to_string(),
    ] {
        send_signin(&mut c, &auth, user_data).await;
        let m = next_is(&mut c, "pusher:error").await;
        assert_eq!(decode_data(&m)["code"], 4009, "{m}");
        sync(&mut c).await;
    }
    // Not signed in: the user channel is refused.
    let m = c.subscribe("#server-to-user-42", None, None).await;
    assert_eq!(m["event"], "pusher:subscription_error", "{m}");
    // A correct sign-in afterwards works on the same connection.
    signin_ok(&mut c, &app, &sid, user_data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_user_data_without_string_id_is_refused() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let (mut c, sid) = server.connect("k").await;
    for user_data in [
        r#"{"id":42}"#,
        r#"{"id":""}"#,
        r#"{"name":"x"}"#,
        r#"["42"]"#,
        "not json",
    ] {
        send_signin(&mut c, &user_auth(&app, &sid, user_data), user_data).await;
        let m = c.recv().await;
        assert_eq!(m["event"], "pusher:error", "user_data {user_data}: {m}");
        sync(&mut c).await;
    }
    // Nothing signed in: terminate_connections for "42" must not close it.
    let (status, _) = terminate_user(&server, &app, "42").await;
    assert_eq!(status, 200);
    sync(&mut c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_to_user_channel_after_signin() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let ch = "#server-to-user-42";
    let (mut user42, sid) = server.connect("k").await;
    signin_ok(&mut user42, &app, &sid, r#"{"id":"42"}"#).await;
    // pusher-js subscribes like a public channel (auth "").
    let m = user42.subscribe(ch, Some(""), None).await;
    assert_eq!(m["event"], "pusher_internal:subscription_succeeded", "{m}");
    assert_eq!(m["channel"], ch);

    let (mut anonymous, _) = server.connect("k").await;
    let m = anonymous.subscribe(ch, Some(""), None).await;
    assert_eq!(m["event"], "pusher:subscription_error", "{m}");
    assert_eq!(m["channel"], ch);
    assert_eq!(m["data"]["type"], "AuthError", "{m}");
    let m = anonymous.subscribe(ch, None, None).await;
    assert_eq!(m["event"], "pusher:subscription_error", "{m}");

    let (mut user43, sid) = server.connect("k").await;
    signin_ok(&mut user43, &app, &sid, r#"{"id":"43"}"#).await;
    let m = user43.subscribe(ch, Some(""), None).await;
    assert_eq!(m["event"], "pusher:subscription_error", "{m}");
    assert_eq!(m["data"]["type"], "AuthError", "{m}");
    // A valid-looking private-channel signature does not help either.
    let auth = channel_auth(&app, &sid, ch, None);
    let m = user43.subscribe(ch, Some(&auth), None).await;
    assert_eq!(m["event"], "pusher:subscription_error", "{m}");

    // sendToUser: POST /events to #server-to-user-42.
    let body = json!({"name": "notice", "channels": [ch], "data": "{\"hi\":1}"}).to_string();
    let (status, resp) = server.api(&app, "POST", "/apps/1/events", &[], &body).await;
    assert_eq!((status, resp), (200, json!({})));
    let m = next_is(&mut user42, "notice").await;
    assert_eq!(m["channel"], ch);
    assert_eq!(m["data"], "{\"hi\":1}");
    // The others did not get it.
    sync(&mut anonymous).await;
    sync(&mut user43).await;

    // Client events are not allowed on the user channel.
    whisper(&mut user42, ch, "client-x", json!({})).await;
    expect_rejection(&mut user42, ch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_authentication_timeout_closes_connections_that_never_sign_in() {
    let server = TestServer::start(&config(
        "enable_user_authentication=true\nuser_authentication_timeout=1",
    ))
    .await;
    let app = app1();
    let start = Instant::now();
    let (mut silent, _) = server.connect("k").await;
    let (mut signed, sid) = server.connect("k").await;
    signin_ok(&mut signed, &app, &sid, r#"{"id":"1"}"#).await;
    match silent.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4009),
        other => panic!("expected close 4009, got {other:?}"),
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    // The signed-in one is still open well after the deadline.
    let until = start + Duration::from_millis(2000);
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    sync(&mut signed).await;
}

// ---------------------------------------------------------------------------------------------
// Slow consumer
// ---------------------------------------------------------------------------------------------

/// Connects with a small receive buffer, so a client that stops reading fills up quickly.
async fn connect_small_buffer(server: &TestServer, key: &str) -> WsClient {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("recv buffer size");
    let stream = tokio::time::timeout(WAIT, socket.connect(server.addr))
        .await
        .expect("tcp connect in time")
        .expect("tcp connect");
    let url = server.ws_url(key, "?protocol=7&client=js&version=8.4.0&flash=false");
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream)),
    )
    .await
    .expect("handshake in time")
    .expect("websocket handshake");
    let mut c = WsClient { ws };
    let m = c.recv().await;
    assert_eq!(m["event"], "pusher:connection_established", "{m}");
    c
}

async fn subscription_count(server: &TestServer, app: &TestApp, ch: &str) -> u64 {
    let (status, resp) = server
        .api(
            app,
            "GET",
            &format!("/apps/1/channels/{ch}"),
            &[("info", "subscription_count")],
            "",
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    resp["subscription_count"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_with_4100_and_others_are_unaffected() {
    let server = TestServer::start(&format!("outbound_queue_size=10\n{}", config(""))).await;
    let app = app1();
    let ch = "firehose";
    let mut slow = connect_small_buffer(&server, "k").await;
    let m = slow.subscribe(ch, Some(""), None).await;
    assert_eq!(m["event"], "pusher_internal:subscription_succeeded", "{m}");
    let (mut fast, _) = public_sub(&server, "k", ch).await;
    assert_eq!(subscription_count(&server, &app, ch).await, 2);

    // From here on `slow` is not read. Every event is read by `fast` before the next is sent,
    // so `fast` never has more than one frame queued.
    let payload = "x".repeat(5 * 1024);
    let max_events = 4000;
    let mut sent = 0;
    let mut kicked = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent < max_events && Instant::now() < deadline {
        let body =
            json!({"name": "big", "channel": ch, "data": format!("{sent}:{payload}")}).to_string();
        let (status, resp) = server.api(&app, "POST", "/apps/1/events", &[], &body).await;
        assert_eq!(status, 200, "{resp}");
        let m = next_is(&mut fast, "big").await;
        let data = m["data"].as_str().expect("string data");
        assert!(
            data.starts_with(&format!("{sent}:")),
            "out of order: {}",
            &data[..20]
        );
        sent += 1;
        if sent % 100 == 0 && subscription_count(&server, &app, ch).await == 1 {
            kicked = true;
            break;
        }
    }
    assert!(
        kicked,
        "the slow consumer was not dropped after {sent} events of 5 KB"
    );
    // A few more events still reach the fast reader.
    for i in 0..20 {
        let body = json!({"name": "after", "channel": ch, "data": i.to_string()}).to_string();
        let (status, _) = server.api(&app, "POST", "/apps/1/events", &[], &body).await;
        assert_eq!(status, 200);
        let m = next_is(&mut fast, "after").await;
        assert_eq!(m["data"], i.to_string());
    }

    // The slow client now drains what was buffered, then sees 4100 or the socket is gone.
    let mut received = 0;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match slow.ws.next().await {
                Some(Ok(Message::Text(_))) => received += 1,
                Some(Ok(Message::Close(Some(f)))) => {
                    return Closed::Code(u16::from(f.code), f.reason.to_string())
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return Closed::NoFrame,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the slow consumer's connection ends");
    match end {
        Closed::Code(code, _) => assert_eq!(code, 4100),
        Closed::NoFrame => {}
    }
    assert!(
        received < sent,
        "the slow consumer got all {sent} events, so it was not cut off ({received})"
    );

    // The server still accepts and serves new connections.
    let (mut fresh, _) = public_sub(&server, "k", ch).await;
    marker(&server, &app, ch).await;
    next_is(&mut fresh, "marker").await;
    next_is(&mut fast, "marker").await;
}

/// A client event on a cache channel reaches the other subscribers but is never its last
/// event: a later subscriber gets `cache_miss`, not the whisper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_are_never_cached() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let ch = "private-cache-room";
    let (mut a, _) = private_sub(&server, &app, ch).await;
    assert_eq!(a.recv().await["event"], "pusher:cache_miss");
    let (mut b, _) = private_sub(&server, &app, ch).await;
    assert_eq!(b.recv().await["event"], "pusher:cache_miss");
    whisper(&mut a, ch, "client-typing", json!({"who": "a"})).await;
    next_is(&mut b, "client-typing").await;

    let (mut late, sid) = server.connect("k").await;
    let ok = sub_private(&mut late, &app, &sid, ch).await;
    assert_succeeded(&ok, ch);
    let m = late.recv().await;
    assert_eq!(
        m["event"], "pusher:cache_miss",
        "the whisper was cached: {m}"
    );
}
