//! `POST /apps/{id}/events`: one event to one or more channels.

use super::*;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

async fn post_events_raw(server: &TestServer, app: &TestApp, body: &str) -> (u16, Value) {
    let path = format!("/apps/{}/events", app.id);
    server.api(app, "POST", &path, &[], body).await
}

/// The next text frame exactly as sent by the server.
async fn recv_raw(c: &mut WsClient) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = tokio::time::timeout_at(deadline, c.ws.next())
            .await
            .expect("a frame in time")
            .expect("connection open")
            .expect("frame readable");
        if let Message::Text(t) = m {
            return t.as_str().to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_channel_and_channels_forms() {
    let server = TestServer::start(ONE_APP).await;
    let (mut a, _) = public_sub(&server, "k", "a").await;
    let (mut b, _) = public_sub(&server, "k", "b").await;
    let (mut c, _) = public_sub(&server, "k", "c").await;
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "one", "channel": "a", "data": "1"}),
    )
    .await;
    assert_eq!((status, resp), (200, json!({})));
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "two", "channels": ["b", "c"], "data": "2"}),
    )
    .await;
    assert_eq!((status, resp), (200, json!({})));
    let m = next_is(&mut a, "one").await;
    assert_eq!(m["channel"], "a");
    assert_eq!(m["data"], "1");
    let m = next_is(&mut b, "two").await;
    assert_eq!(m["channel"], "b");
    assert_eq!(m["data"], "2");
    let m = next_is(&mut c, "two").await;
    assert_eq!(m["channel"], "c");
    // "a" got only its own event, "b" nothing of "a".
    a.expect_silence(Duration::from_millis(200)).await;
    b.expect_silence(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_data_is_forwarded_byte_for_byte() {
    let server = TestServer::start(ONE_APP).await;
    let (mut c, _) = public_sub(&server, "k", "bytes").await;
    // A JSON string literal with a \u escape, an escaped slash and escaped quotes.
    let literal = r#""{\"msg\":\"caf\u00e9 a\/b\",\"n\":1.50}""#;
    let body = format!(r#"{{"name":"ev","channel":"bytes","data":{literal}}}"#);
    let (status, resp) = post_events_raw(&server, &app1(), &body).await;
    assert_eq!(status, 200, "{resp}");
    let raw = recv_raw(&mut c).await;
    assert!(
        raw.contains(&format!("\"data\":{literal}")),
        "data was not forwarded byte for byte: {raw}"
    );
    let v: Value = serde_json::from_str(&raw).expect("frame is JSON");
    assert_eq!(v["event"], "ev");
    assert_eq!(v["channel"], "bytes");
    assert_eq!(v["data"], "{\"msg\":\"café a/b\",\"n\":1.50}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_id_excludes_only_that_connection() {
    let server = TestServer::start(ONE_APP).await;
    let (mut a, sid_a) = public_sub(&server, "k", "room").await;
    let (mut b, _) = public_sub(&server, "k", "room").await;
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "excluded", "channel": "room", "data": "x", "socket_id": sid_a}),
    )
    .await;
    assert_eq!((status, resp), (200, json!({})));
    let (status, _) = post_events(
        &server,
        &app1(),
        &json!({"name": "marker", "channel": "room", "data": "y"}),
    )
    .await;
    assert_eq!(status, 200);
    next_is(&mut b, "excluded").await;
    next_is(&mut b, "marker").await;
    // a's next message is the marker: it never got the excluded event.
    next_is(&mut a, "marker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_unknown_socket_id_is_ignored() {
    let server = TestServer::start(ONE_APP).await;
    let (mut a, _) = public_sub(&server, "k", "room").await;
    for sid in ["not-a-socket-id", "1.2", "123.", ".5", "12.34.56"] {
        let (status, resp) = post_events(
            &server,
            &app1(),
            &json!({"name": "e", "channel": "room", "data": sid, "socket_id": sid}),
        )
        .await;
        assert_eq!((status, resp), (200, json!({})), "socket_id {sid}");
        let m = next_is(&mut a, "e").await;
        assert_eq!(m["data"], sid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_info_returns_channel_attributes() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (_p, _) = public_sub(&server, "k", "pub").await;
    let (_m1, _) = presence_sub(&server, &app, "presence-room", &member(json!("1"))).await;
    let (_m2, _) = presence_sub(&server, &app, "presence-room", &member(json!("1"))).await;
    let (_m3, _) = presence_sub(&server, &app, "presence-room", &member(json!("2"))).await;
    let (status, resp) = post_events(
        &server,
        &app,
        &json!({
            "name": "e",
            "channels": ["pub", "presence-room", "empty"],
            "data": "x",
            "info": "subscription_count,user_count"
        }),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"channels": {
            "pub": {"subscription_count": 1},
            "presence-room": {"subscription_count": 3, "user_count": 2},
            "empty": {"subscription_count": 0}
        }})
    );
    let (status, resp) = post_events(
        &server,
        &app,
        &json!({"name": "e", "channel": "presence-room", "data": "x", "info": "user_count"}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"channels": {"presence-room": {"user_count": 2}}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_over_max_event_payload_size_is_413() {
    let server = TestServer::start(
        "[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\nmax_event_payload_size=100\n",
    )
    .await;
    let (mut c, _) = public_sub(&server, "k", "c").await;
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "big", "channel": "c", "data": "x".repeat(101)}),
    )
    .await;
    assert_error(status, &resp, 413);
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "fits", "channel": "c", "data": "x".repeat(100)}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    next_is(&mut c, "fits").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_channels_than_max_event_channels_is_400() {
    let server =
        TestServer::start("[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\nmax_event_channels=2\n")
            .await;
    let (mut c, _) = public_sub(&server, "k", "a").await;
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "e3", "channels": ["a", "b", "c"], "data": "x"}),
    )
    .await;
    assert_error(status, &resp, 400);
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "e2", "channels": ["a", "b"], "data": "x"}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    next_is(&mut c, "e2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_name_longer_than_limit_is_400() {
    let server = TestServer::start(
        "[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\nmax_event_name_length=10\n",
    )
    .await;
    let (mut c, _) = public_sub(&server, "k", "a").await;
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "n".repeat(11), "channel": "a", "data": "x"}),
    )
    .await;
    assert_error(status, &resp, 400);
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "m".repeat(10), "channel": "a", "data": "x"}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let m = c.recv().await;
    assert_eq!(m["event"], "m".repeat(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_event_name_limit_is_200() {
    let server = TestServer::start(ONE_APP).await;
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "n".repeat(201), "channel": "a", "data": "x"}),
    )
    .await;
    assert_error(status, &resp, 400);
    let (status, _) = post_events(
        &server,
        &app1(),
        &json!({"name": "n".repeat(200), "channel": "a", "data": "x"}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_channel_name_is_400() {
    let server = TestServer::start(ONE_APP).await;
    let too_long = "c".repeat(201);
    for ch in [
        "has space",
        "",
        "a#b",
        "#other-thing",
        "slash/no",
        "ü",
        too_long.as_str(),
    ] {
        let (status, resp) = post_events(
            &server,
            &app1(),
            &json!({"name": "e", "channel": ch, "data": "x"}),
        )
        .await;
        assert_error(status, &resp, 400);
        let (status, resp) = post_events(
            &server,
            &app1(),
            &json!({"name": "e", "channels": ["ok", ch], "data": "x"}),
        )
        .await;
        assert_error(status, &resp, 400);
    }
    // Every allowed character, 200 long.
    let ok = format!("{}{}", "Az09_-=@,.;", "x".repeat(189));
    assert_eq!(ok.len(), 200);
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "e", "channel": ok, "data": "x"}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_name_or_data_is_400() {
    let server = TestServer::start(ONE_APP).await;
    let (mut c, _) = public_sub(&server, "k", "a").await;
    for body in [
        json!({"channel": "a", "data": "x"}),
        json!({"name": "e", "channel": "a"}),
        json!({"name": "e", "data": "x"}),
        json!({}),
    ] {
        let (status, resp) = post_events(&server, &app1(), &body).await;
        assert_error(status, &resp, 400);
    }
    c.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_body_is_400() {
    let server = TestServer::start(ONE_APP).await;
    for body in ["{not json", "[]", "\"string\"", "{\"name\":\"e\",}"] {
        let (status, resp) = post_events_raw(&server, &app1(), body).await;
        assert_error(status, &resp, 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_max_http_body_size_is_413() {
    let server =
        TestServer::start("max_http_body_size=2048\n[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\n")
            .await;
    let (mut c, _) = public_sub(&server, "k", "a").await;
    let big = json!({"name": "big", "channel": "a", "data": "x".repeat(3000)});
    let (status, resp) = post_events(&server, &app1(), &big).await;
    assert_error(status, &resp, 413);
    let small = json!({"name": "small", "channel": "a", "data": "x".repeat(1500)});
    let (status, resp) = post_events(&server, &app1(), &small).await;
    assert_eq!(status, 200, "{resp}");
    next_is(&mut c, "small").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laravel_event_name_is_delivered_unchanged() {
    let server = TestServer::start(ONE_APP).await;
    let (mut c, _) = public_sub(&server, "k", "orders.1").await;
    // On the wire: "App\\Events\\ReservationCreated" (JSON-escaped backslashes).
    let body =
        r#"{"name":"App\\Events\\ReservationCreated","channel":"orders.1","data":"{\"id\":3}"}"#;
    let (status, resp) = post_events_raw(&server, &app1(), body).await;
    assert_eq!(status, 200, "{resp}");
    let m = c.recv().await;
    assert_eq!(m["event"], "App\\Events\\ReservationCreated");
    assert_eq!(m["channel"], "orders.1");
    assert_eq!(m["data"], "{\"id\":3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_to_user_channel_is_accepted_by_trigger() {
    let server = TestServer::start(ONE_APP).await;
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "notify", "channel": "#server-to-user-42", "data": "{}"}),
    )
    .await;
    assert_eq!((status, resp), (200, json!({})));
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "notify", "channels": ["#server-to-user-42", "#server-to-user-abc"], "data": "{}"}),
    )
    .await;
    assert_eq!((status, resp), (200, json!({})));
}
