//! Steps many tests take: the app most tests use, triggering an event, subscribing to each kind
//! of channel, signing in, and the round trip that proves a connection has nothing queued.
//! One version of each, so that a test file states only what it proves.
#![allow(dead_code)]

use serde_json::{json, Value};

use super::{channel_auth, user_auth, TestApp, TestServer, WsClient};

/// The app `1` / `k` / `s` that most test configs declare.
pub fn app1() -> TestApp {
    TestApp::new("1", "k", "s")
}

/// Triggers `event` on `channel` with `data` through `POST /apps/{id}/events`; asserts 200 `{}`.
pub async fn trigger(server: &TestServer, app: &TestApp, channel: &str, event: &str, data: &str) {
    let body = json!({"name": event, "channel": channel, "data": data}).to_string();
    trigger_raw(server, app, &body).await;
}

/// `POST /apps/{id}/events` with a hand-written body (to control escapes byte by byte, or to add
/// fields such as `socket_id`); asserts 200 `{}`.
pub async fn trigger_raw(server: &TestServer, app: &TestApp, body: &str) {
    let path = format!("/apps/{}/events", app.id);
    let (status, resp) = server.api(app, "POST", &path, &[], body).await;
    assert_eq!((status, &resp), (200, &json!({})), "trigger {body}");
}

/// `POST /apps/{id}/users/{user_id}/terminate_connections`; returns status and body.
pub async fn terminate_user(server: &TestServer, app: &TestApp, user_id: &str) -> (u16, Value) {
    let path = format!("/apps/{}/users/{user_id}/terminate_connections", app.id);
    server.api(app, "POST", &path, &[], "{}").await
}

/// Asserts the next message is `event` (nothing else arrived before it), and returns it.
pub async fn next_is(c: &mut WsClient, event: &str) -> Value {
    let m = c.recv().await;
    assert_eq!(m["event"], event, "expected {event} next, got {m}");
    m
}

/// Asserts the next message is `event` on `channel`, and returns it.
pub async fn next_is_on(c: &mut WsClient, event: &str, channel: &str) -> Value {
    let m = next_is(c, event).await;
    assert_eq!(m["channel"], channel, "{m}");
    m
}

/// Sends `pusher:ping` and asserts that the very next message is `pusher:pong`. The server
/// handles a connection's frames in order, so everything sent before has been processed, and
/// everything queued for the connection before has been read, when this returns.
pub async fn sync(c: &mut WsClient) {
    c.send(json!({"event": "pusher:ping", "data": {}})).await;
    next_is(c, "pusher:pong").await;
}

/// Asserts `m` is `pusher_internal:subscription_succeeded` for `channel`.
pub fn assert_succeeded(m: &Value, channel: &str) {
    assert_eq!(
        m["event"], "pusher_internal:subscription_succeeded",
        "expected subscription_succeeded for {channel}, got {m}"
    );
    assert_eq!(m["channel"], channel, "{m}");
}

/// Subscribes to a private (or encrypted) channel with a correct signature; returns the answer.
pub async fn sub_private(c: &mut WsClient, app: &TestApp, sid: &str, channel: &str) -> Value {
    let auth = channel_auth(app, sid, channel, None);
    c.subscribe(channel, Some(&auth), None).await
}

/// Subscribes to a presence channel with `channel_data` and a correct signature; returns the
/// answer.
pub async fn sub_presence(
    c: &mut WsClient,
    app: &TestApp,
    sid: &str,
    channel: &str,
    channel_data: &str,
) -> Value {
    let auth = channel_auth(app, sid, channel, Some(channel_data));
    c.subscribe(channel, Some(&auth), Some(channel_data)).await
}

/// Subscribes to a private (or encrypted) channel with a correct signature; asserts success.
pub async fn join_private(c: &mut WsClient, app: &TestApp, sid: &str, channel: &str) {
    assert_succeeded(&sub_private(c, app, sid, channel).await, channel);
}

/// Joins a presence channel with correctly signed `channel_data`; asserts success and returns
/// the `subscription_succeeded` frame.
pub async fn join_presence(
    c: &mut WsClient,
    app: &TestApp,
    sid: &str,
    channel: &str,
    channel_data: &str,
) -> Value {
    let m = sub_presence(c, app, sid, channel, channel_data).await;
    assert_succeeded(&m, channel);
    m
}

/// Connects to app `key` and subscribes to a public channel.
pub async fn public_sub(server: &TestServer, key: &str, channel: &str) -> (WsClient, String) {
    let (mut c, sid) = server.connect(key).await;
    let m = c.subscribe(channel, Some(""), None).await;
    assert_succeeded(&m, channel);
    (c, sid)
}

/// Connects and subscribes to a private (or private-encrypted) channel.
pub async fn private_sub(server: &TestServer, app: &TestApp, channel: &str) -> (WsClient, String) {
    let (mut c, sid) = server.connect(&app.key).await;
    join_private(&mut c, app, &sid, channel).await;
    (c, sid)
}

/// Connects and joins a presence channel with the given `channel_data` JSON text.
pub async fn presence_sub(
    server: &TestServer,
    app: &TestApp,
    channel: &str,
    channel_data: &str,
) -> (WsClient, String) {
    let (mut c, sid) = server.connect(&app.key).await;
    join_presence(&mut c, app, &sid, channel, channel_data).await;
    (c, sid)
}

/// Sends `pusher:signin` with the given `auth` and `user_data` (right or wrong); reads nothing.
pub async fn send_signin(c: &mut WsClient, auth: &str, user_data: &str) {
    c.send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
        .await;
}

/// Signs in with `user_data` signed by `app` for socket `sid`, and returns the server's answer.
pub async fn signin(c: &mut WsClient, app: &TestApp, sid: &str, user_data: &str) -> Value {
    send_signin(c, &user_auth(app, sid, user_data), user_data).await;
    c.recv().await
}

/// Signs in and asserts the very next message is `pusher:signin_success` echoing `user_data`.
pub async fn signin_ok(c: &mut WsClient, app: &TestApp, sid: &str, user_data: &str) {
    let m = signin(c, app, sid, user_data).await;
    assert_eq!(m["event"], "pusher:signin_success", "{m}");
    let raw = m["data"]
        .as_str()
        .expect("signin_success data is a JSON string");
    let data: Value = serde_json::from_str(raw).expect("data holds JSON");
    assert_eq!(data["user_data"], user_data, "{m}");
}
