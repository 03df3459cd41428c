//! Subscribing to public, private and encrypted channels, channel-name rules, unsubscribing,
//! and apps that share channel names without seeing each other.

use super::*;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

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
