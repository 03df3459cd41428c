//! Who may hold a connection (docs/protocol.md §3.5–§3.6): the origin allow-list
//! (`allowed_origins`, `allow_missing_origin`) and authorized connections
//! (`authorized_connections_timeout`). Refusals are a `pusher:error` 4009 and close 4009 after
//! the upgrade, which pusher-js does not retry.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::*;

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

/// Connects with an `Origin` header (`None`: none); returns the first frame and the client.
async fn connect_from(server: &TestServer, origin: Option<&str>) -> (WsClient, serde_json::Value) {
    let mut req = server
        .ws_url("k", "?protocol=7")
        .into_client_request()
        .expect("request");
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(o).expect("header"));
    }
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connect in time")
        .expect("handshake");
    let mut c = WsClient { ws };
    let first = c.recv().await;
    (c, first)
}

/// The refusal pusher-js does not retry: `pusher:error` 4009 with `message`, then close 4009.
async fn assert_refused(mut c: WsClient, first: &serde_json::Value, message: &str) {
    assert_eq!(first["event"], "pusher:error", "{first}");
    assert_eq!(
        first["data"],
        json!({"code": 4009, "message": message}),
        "{first}"
    );
    assert_eq!(c.closed().await, Closed::Code(4009, message.into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_origins_may_connect() {
    let server = TestServer::start(&format!(
        "{APP}allowed_origins = [\"app.example.com\", \"*.example.org\"]\n"
    ))
    .await;
    for ok in [
        "https://app.example.com",
        "http://APP.example.com:8080",
        "https://shop.example.org",
    ] {
        let (_c, first) = connect_from(&server, Some(ok)).await;
        assert_eq!(first["event"], "pusher:connection_established", "{ok}");
    }
    for refused in [
        Some("https://example.org"),
        Some("https://evil.com"),
        Some("https://app.example.com.evil.com"),
        None,
    ] {
        let (c, first) = connect_from(&server, refused).await;
        assert_refused(c, &first, "Origin not allowed").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_clients_without_an_origin_may_be_let_in() {
    let server = TestServer::start(&format!(
        "{APP}allowed_origins = [\"app.example.com\"]\nallow_missing_origin = true\n"
    ))
    .await;
    let (_c, first) = connect_from(&server, None).await;
    assert_eq!(first["event"], "pusher:connection_established");
    let (c, first) = connect_from(&server, Some("https://other.example.com")).await;
    assert_refused(c, &first, "Origin not allowed").await;
    // Without a list, everything is allowed (the default).
    let open = TestServer::start(APP).await;
    let (_c, first) = connect_from(&open, Some("https://anything.test")).await;
    assert_eq!(first["event"], "pusher:connection_established");
}

#[test]
fn an_origin_pattern_with_a_path_stops_the_server_at_start() {
    let toml = format!("{APP}allowed_origins = [\"https://app.example.com/admin\"]\n");
    let mut c = clarion::config::Config::from_toml(&toml).expect("parses");
    let e = c.finish().expect_err("a path is not a host pattern");
    assert!(e.starts_with("apps[0].allowed_origins[0]:"), "{e}");
    let neg = format!("{APP}authorized_connections_timeout = -1\n");
    let e = clarion::config::Config::from_toml(&neg)
        .map(|_| ())
        .expect_err("a negative timeout");
    assert!(e.contains("authorized_connections_timeout"), "{e}");
}

/// A connection that neither signs in nor subscribes to a private or presence channel within
/// `authorized_connections_timeout` gets 4009; one that does stays (public subscriptions do not
/// authorize).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_connections_are_closed_after_the_timeout() {
    let server = TestServer::start(&format!(
        "{APP}enable_client_messages = true\nauthorized_connections_timeout = 1\n"
    ))
    .await;
    let app = TestApp::new("1", "k", "s");
    let started = Instant::now();
    let (mut idle, _) = server.connect("k").await;
    assert_succeeded(&idle.subscribe("news", Some(""), None).await, "news");
    let (mut private, psid) = server.connect("k").await;
    let auth = channel_auth(&app, &psid, "private-a", None);
    assert_succeeded(
        &private.subscribe("private-a", Some(&auth), None).await,
        "private-a",
    );
    let (mut signed, ssid) = server.connect("k").await;
    let user = r#"{"id":"7"}"#;
    signed
        .send(json!({"event": "pusher:signin", "data": {"auth": user_auth(&app, &ssid, user), "user_data": user}}))
        .await;
    signed.expect_event("pusher:signin_success").await;

    let first = idle.recv().await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    assert_refused(idle, &first, "Connection not authorized within timeout").await;
    private.expect_silence(Duration::from_millis(500)).await;
    signed.expect_silence(Duration::from_millis(10)).await;
}

/// Until it authorizes, a connection does not count toward `max_connections`: strangers holding
/// connections do not lock out users; at authorization the quota applies (4004 when full).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_connections_do_not_count_toward_the_quota() {
    let server = TestServer::start(&format!(
        "{APP}max_connections = 1\nauthorized_connections_timeout = 5\n"
    ))
    .await;
    let app = TestApp::new("1", "k", "s");
    let (_s1, _) = server.connect("k").await;
    let (_s2, _) = server.connect("k").await;
    let (mut user, sid) = server.connect("k").await;
    let auth = channel_auth(&app, &sid, "private-a", None);
    assert_succeeded(
        &user.subscribe("private-a", Some(&auth), None).await,
        "private-a",
    );
    user.expect_silence(Duration::from_millis(200)).await;
    let (mut second, sid2) = server.connect("k").await;
    let auth = channel_auth(&app, &sid2, "private-a", None);
    let m = second.subscribe("private-a", Some(&auth), None).await;
    assert_eq!(m["event"], "pusher:error", "{m}");
    assert_eq!(m["data"]["code"], 4004, "{m}");
    assert!(matches!(second.closed().await, Closed::Code(4004, _)));
    // The first user leaving frees the slot.
    drop(user);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut third, sid3) = server.connect("k").await;
    let auth = channel_auth(&app, &sid3, "private-a", None);
    assert_succeeded(
        &third.subscribe("private-a", Some(&auth), None).await,
        "private-a",
    );
    third.expect_silence(Duration::from_millis(200)).await;
}
