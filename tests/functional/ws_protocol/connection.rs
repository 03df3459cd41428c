//! Connecting: `pusher:connection_established`, the fatal connect errors (an error, then a
//! close frame with the same code), and what a disconnect cleans up.

use super::*;

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
// Disconnect cleanup
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
