mod common;
use common::*;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const ONE_APP: &str = "[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\nenable_client_messages=true\n";

/// Two apps, for isolation and foreign-key tests.
const TWO_APPS: &str =
    "[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\n[[apps]]\nid=\"2\"\nkey=\"k2\"\nsecret=\"s2\"\n";

fn app2() -> TestApp {
    TestApp::new("2", "k2", "s2")
}

/// Asserts an error status and a JSON object body with a string `error`; returns the message.
fn assert_error(status: u16, body: &Value, expected: u16) -> String {
    assert_eq!(status, expected, "unexpected status, body {body}");
    assert!(body.is_object(), "error body is not a JSON object: {body}");
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("error body has no string \"error\": {body}"))
        .to_string()
}

/// The signature of `params` as the protocol defines it: keys lowercased, sorted by key, values
/// as given (decoded), joined with `&`, after `METHOD\nPATH\n`.
fn sign_string(app: &TestApp, method: &str, path: &str, params: &[(&str, &str)]) -> String {
    let mut p: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.to_string()))
        .collect();
    p.sort();
    let q: Vec<String> = p.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let to_sign = format!("{method}\n{path}\n{}", q.join("&"));
    hmac_hex(&app.secret, &to_sign)
}

/// Sends a request whose query is exactly `params` (raw, in this order) plus a signature
/// computed over them.
async fn send_signed_params(
    server: &TestServer,
    app: &TestApp,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let sig = sign_string(app, method, path, params);
    let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    server
        .raw_http(
            method,
            &format!("{path}?{}&auth_signature={sig}", q.join("&")),
            body,
        )
        .await
}

/// `POST /apps/{id}/events` with `body`; returns status and body (whatever they are).
async fn post_events(server: &TestServer, app: &TestApp, body: &Value) -> (u16, Value) {
    let path = format!("/apps/{}/events", app.id);
    server.api(app, "POST", &path, &[], &body.to_string()).await
}

async fn post_events_raw(server: &TestServer, app: &TestApp, body: &str) -> (u16, Value) {
    let path = format!("/apps/{}/events", app.id);
    server.api(app, "POST", &path, &[], body).await
}

/// The channel_data of a presence member `user_id` (raw JSON value) with a small `user_info`.
fn member(user_id: Value) -> String {
    json!({"user_id": user_id, "user_info": {"n": 1}}).to_string()
}

async fn batch(server: &TestServer, app: &TestApp, body: &Value) -> (u16, Value) {
    let path = format!("/apps/{}/batch_events", app.id);
    server.api(app, "POST", &path, &[], &body.to_string()).await
}

async fn get(
    server: &TestServer,
    app: &TestApp,
    path: &str,
    query: &[(&str, &str)],
) -> (u16, Value) {
    server.api(app, "GET", path, query, "").await
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

// ---------------------------------------------------------------------------------------------
// Signature rules
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_signed_request_returns_empty_object() {
    let server = TestServer::start(ONE_APP).await;
    let (status, body) = post_events(
        &server,
        &app1(),
        &json!({"name": "e", "channel": "c", "data": "x"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_signature_is_401_and_shows_the_string_to_sign() {
    let server = TestServer::start(ONE_APP).await;
    let body = json!({"name": "e", "channel": "c", "data": "x"}).to_string();
    let ts = now();
    let q = signed_query(&app1(), "POST", "/apps/1/events", &[], &body, ts);
    let (unsigned, _) = q.split_once("&auth_signature=").expect("signature param");
    let bad = format!("{unsigned}&auth_signature={}", "0".repeat(64));
    let (status, resp) = server
        .raw_http("POST", &format!("/apps/1/events?{bad}"), &body)
        .await;
    let err = assert_error(status, &resp, 401);
    let to_sign = format!("POST\n/apps/1/events\n{unsigned}");
    assert!(
        err.contains(&to_sign) || err.contains(&to_sign.replace('\n', "\\n")),
        "error does not show the expected string to sign {to_sign:?}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_timestamp_is_401() {
    let server = TestServer::start(ONE_APP).await;
    for ts in [now() - 601, now() + 601, now() - 3600] {
        let q = signed_query(&app1(), "GET", "/apps/1/channels", &[], "", ts);
        let (status, resp) = server
            .raw_http("GET", &format!("/apps/1/channels?{q}"), "")
            .await;
        let err = assert_error(status, &resp, 401);
        assert!(err.contains("Timestamp expired"), "ts {ts}: {err}");
    }
    // Within the window is fine.
    let q = signed_query(&app1(), "GET", "/apps/1/channels", &[], "", now() - 500);
    let (status, resp) = server
        .raw_http("GET", &format!("/apps/1/channels?{q}"), "")
        .await;
    assert_eq!(status, 200, "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_key_of_another_app_is_401() {
    let server = TestServer::start(TWO_APPS).await;
    // Correctly signed with app 1's secret, but carrying app 2's key.
    let mixed = TestApp::new("1", "k2", "s");
    let (status, resp) = get(&server, &mixed, "/apps/1/channels", &[]).await;
    assert_error(status, &resp, 401);
    // App 2's complete credentials on app 1's path.
    let foreign = TestApp::new("1", "k2", "s2");
    let (status, resp) = get(&server, &foreign, "/apps/1/channels", &[]).await;
    assert_error(status, &resp, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_md5_mismatch_is_401() {
    let server = TestServer::start(ONE_APP).await;
    let body = json!({"name": "e", "channel": "c", "data": "x"}).to_string();
    let other_md5 = md5_hex("{}");
    let ts = now().to_string();
    let params = [
        ("auth_key", "k"),
        ("auth_timestamp", ts.as_str()),
        ("auth_version", "1.0"),
        ("body_md5", other_md5.as_str()),
    ];
    let (status, resp) =
        send_signed_params(&server, &app1(), "POST", "/apps/1/events", &params, &body).await;
    let err = assert_error(status, &resp, 401);
    assert!(err.contains("body_md5"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_without_body_md5_is_401() {
    let server = TestServer::start(ONE_APP).await;
    let (mut c, _) = public_sub(&server, "k", "c").await;
    let body = json!({"name": "e", "channel": "c", "data": "x"}).to_string();
    let ts = now().to_string();
    let params = [
        ("auth_key", "k"),
        ("auth_timestamp", ts.as_str()),
        ("auth_version", "1.0"),
    ];
    let (status, resp) =
        send_signed_params(&server, &app1(), "POST", "/apps/1/events", &params, &body).await;
    assert_error(status, &resp, 401);
    c.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_version_missing_or_not_1_0_is_401() {
    let server = TestServer::start(ONE_APP).await;
    let ts = now().to_string();
    let missing = [("auth_key", "k"), ("auth_timestamp", ts.as_str())];
    let (status, resp) =
        send_signed_params(&server, &app1(), "GET", "/apps/1/channels", &missing, "").await;
    assert_error(status, &resp, 401);
    let wrong = [
        ("auth_key", "k"),
        ("auth_timestamp", ts.as_str()),
        ("auth_version", "2.0"),
    ];
    let (status, resp) =
        send_signed_params(&server, &app1(), "GET", "/apps/1/channels", &wrong, "").await;
    assert_error(status, &resp, 401);
    // Same construction with 1.0 is accepted, so the 401s above are about the version.
    let right = [
        ("auth_key", "k"),
        ("auth_timestamp", ts.as_str()),
        ("auth_version", "1.0"),
    ];
    let (status, resp) =
        send_signed_params(&server, &app1(), "GET", "/apps/1/channels", &right, "").await;
    assert_eq!(status, 200, "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uppercase_query_keys_are_accepted() {
    let server = TestServer::start(ONE_APP).await;
    let ts = now().to_string();
    let params = [
        ("AUTH_KEY", "k"),
        ("Auth_Timestamp", ts.as_str()),
        ("AUTH_VERSION", "1.0"),
        ("FILTER_BY_PREFIX", "x"),
    ];
    let (status, resp) =
        send_signed_params(&server, &app1(), "GET", "/apps/1/channels", &params, "").await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"channels": {}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_values_are_accepted_and_decoded() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (_c, _) = presence_sub(&server, &app, "presence-room", &member(json!("u1"))).await;
    let ts = now().to_string();
    // Signed over the decoded value, sent percent-encoded (as Guzzle in pusher-http-php does).
    let sig = sign_string(
        &app,
        "GET",
        "/apps/1/channels/presence-room",
        &[
            ("auth_key", "k"),
            ("auth_timestamp", ts.as_str()),
            ("auth_version", "1.0"),
            ("info", "user_count,subscription_count"),
        ],
    );
    let path = format!(
        "/apps/1/channels/presence-room?auth_key=k&auth_timestamp={ts}&auth_version=1.0&info=user_count%2Csubscription_count&auth_signature={sig}"
    );
    let (status, resp) = server.raw_http("GET", &path, "").await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"occupied": true, "user_count": 1, "subscription_count": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_body_md5_of_empty_body_is_accepted() {
    let server = TestServer::start(ONE_APP).await;
    let ts = now().to_string();
    let empty_md5 = md5_hex("");
    assert_eq!(empty_md5, "d41d8cd98f00b204e9800998ecf8427e");
    let params = [
        ("auth_key", "k"),
        ("auth_timestamp", ts.as_str()),
        ("auth_version", "1.0"),
        ("body_md5", empty_md5.as_str()),
    ];
    let (status, resp) =
        send_signed_params(&server, &app1(), "GET", "/apps/1/channels", &params, "").await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"channels": {}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_app_id_is_404() {
    let server = TestServer::start(ONE_APP).await;
    let ghost = TestApp::new("999", "k", "s");
    let (status, resp) = get(&server, &ghost, "/apps/999/channels", &[]).await;
    assert_error(status, &resp, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_app_is_403() {
    let server =
        TestServer::start("[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\nenabled=false\n").await;
    let (status, resp) = get(&server, &app1(), "/apps/1/channels", &[]).await;
    assert_error(status, &resp, 403);
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "e", "channel": "c", "data": "x"}),
    )
    .await;
    assert_error(status, &resp, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405() {
    let server = TestServer::start(ONE_APP).await;
    let (status, resp) = get(&server, &app1(), "/apps/1/events", &[]).await;
    assert_error(status, &resp, 405);
    let (status, resp) = server
        .api(&app1(), "POST", "/apps/1/channels", &[], "{}")
        .await;
    assert_error(status, &resp, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoint_is_404() {
    let server = TestServer::start(ONE_APP).await;
    let (status, resp) = get(&server, &app1(), "/apps/1/nothing-here", &[]).await;
    assert_error(status, &resp, 404);
    let (status, resp) = server.raw_http("GET", "/nothing/here", "").await;
    assert_error(status, &resp, 404);
}

// ---------------------------------------------------------------------------------------------
// POST /events
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// POST /batch_events
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_delivers_every_event_and_returns_empty_object() {
    let server = TestServer::start(ONE_APP).await;
    let (mut a, _) = public_sub(&server, "k", "a").await;
    let (mut b, _) = public_sub(&server, "k", "b").await;
    let (status, resp) = batch(
        &server,
        &app1(),
        &json!({"batch": [
            {"name": "e1", "channel": "a", "data": "1"},
            {"name": "e2", "channel": "b", "data": "2"},
            {"name": "e3", "channel": "a", "data": "3"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({}));
    let m = next_is(&mut a, "e1").await;
    assert_eq!(m["data"], "1");
    let m = next_is(&mut a, "e3").await;
    assert_eq!(m["data"], "3");
    let m = next_is(&mut b, "e2").await;
    assert_eq!(
        (m["channel"].clone(), m["data"].clone()),
        (json!("b"), json!("2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_info_is_index_aligned() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (_p1, _) = public_sub(&server, "k", "pub").await;
    let (_p2, _) = public_sub(&server, "k", "pub").await;
    let (_m1, _) = presence_sub(&server, &app, "presence-x", &member(json!(1))).await;
    let (_m2, _) = presence_sub(&server, &app, "presence-x", &member(json!(1))).await;
    let (status, resp) = batch(
        &server,
        &app,
        &json!({"batch": [
            {"name": "e", "channel": "pub", "data": "x"},
            {"name": "e", "channel": "pub", "data": "x", "info": "subscription_count"},
            {"name": "e", "channel": "presence-x", "data": "x", "info": "subscription_count,user_count"},
            {"name": "e", "channel": "pub", "data": "x", "info": "user_count"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"batch": [
            {},
            {"subscription_count": 2},
            {"subscription_count": 2, "user_count": 1},
            {}
        ]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_over_max_event_batch_size_is_400_and_delivers_nothing() {
    let server =
        TestServer::start("[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\nmax_event_batch_size=2\n")
            .await;
    let (mut a, _) = public_sub(&server, "k", "a").await;
    let (status, resp) = batch(
        &server,
        &app1(),
        &json!({"batch": [
            {"name": "e1", "channel": "a", "data": "1"},
            {"name": "e2", "channel": "a", "data": "2"},
            {"name": "e3", "channel": "a", "data": "3"}
        ]}),
    )
    .await;
    assert_error(status, &resp, 400);
    let (status, resp) = batch(
        &server,
        &app1(),
        &json!({"batch": [
            {"name": "ok1", "channel": "a", "data": "1"},
            {"name": "ok2", "channel": "a", "data": "2"}
        ]}),
    )
    .await;
    assert_eq!((status, resp), (200, json!({})));
    next_is(&mut a, "ok1").await;
    next_is(&mut a, "ok2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_one_invalid_item_is_400_and_delivers_nothing() {
    let server = TestServer::start(ONE_APP).await;
    let (mut a, _) = public_sub(&server, "k", "a").await;
    let bad_items = [
        json!({"name": "bad", "channel": "no space allowed", "data": "x"}),
        json!({"channel": "a", "data": "x"}),
        json!({"name": "bad", "channel": "a"}),
        json!({"name": "bad", "channel": "a", "data": "x".repeat(10 * 1024 + 1)}),
    ];
    for bad in bad_items {
        let (status, resp) = batch(
            &server,
            &app1(),
            &json!({"batch": [
                {"name": "first", "channel": "a", "data": "1"},
                bad,
                {"name": "third", "channel": "a", "data": "3"}
            ]}),
        )
        .await;
        assert!(
            status == 400 || status == 413,
            "status {status} for an invalid item: {resp}"
        );
        assert_error(status, &resp, status);
    }
    let (status, _) = post_events(
        &server,
        &app1(),
        &json!({"name": "marker", "channel": "a", "data": "m"}),
    )
    .await;
    assert_eq!(status, 200);
    next_is(&mut a, "marker").await;
}

// ---------------------------------------------------------------------------------------------
// Channel queries
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_lists_occupied_channels_only() {
    let server = TestServer::start(ONE_APP).await;
    let (status, raw) = get(&server, &app1(), "/apps/1/channels", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(raw, json!({"channels": {}}), "empty list must be an object");
    let (mut c, _) = public_sub(&server, "k", "alpha").await;
    let m = c.subscribe("beta", Some(""), None).await;
    assert_eq!(m["event"], "pusher_internal:subscription_succeeded");
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "beta"}}))
        .await;
    sync(&mut c).await;
    // A channel that only ever received a trigger is not occupied either.
    post_events(
        &server,
        &app1(),
        &json!({"name": "e", "channel": "gamma", "data": "x"}),
    )
    .await;
    let (status, resp) = get(&server, &app1(), "/apps/1/channels", &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"channels": {"alpha": {}}}));
    drop(c);
    // After the last subscriber leaves, the list is empty again.
    let mut last = Value::Null;
    for _ in 0..50 {
        let (_, resp) = get(&server, &app1(), "/apps/1/channels", &[]).await;
        last = resp;
        if last == json!({"channels": {}}) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last, json!({"channels": {}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_filter_by_prefix_and_user_count() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (_a, _) = public_sub(&server, "k", "pub-1").await;
    let (_b, _) = public_sub(&server, "k", "other").await;
    let (_m1, _) = presence_sub(&server, &app, "presence-x", &member(json!("1"))).await;
    let (_m2, _) = presence_sub(&server, &app, "presence-x", &member(json!("2"))).await;
    let (_m3, _) = presence_sub(&server, &app, "presence-x", &member(json!("2"))).await;
    let (_m4, _) = presence_sub(&server, &app, "presence-y", &member(json!("1"))).await;
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels",
        &[("filter_by_prefix", "pub-")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"channels": {"pub-1": {}}}));
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels",
        &[("filter_by_prefix", "presence-"), ("info", "user_count")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"channels": {
            "presence-x": {"user_count": 2},
            "presence-y": {"user_count": 1}
        }})
    );
    let (status, resp) = get(&server, &app, "/apps/1/channels", &[]).await;
    assert_eq!(status, 200, "{resp}");
    let names: Vec<&String> = resp["channels"]
        .as_object()
        .expect("channels object")
        .keys()
        .collect();
    assert_eq!(names.len(), 4, "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_info_public() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (status, resp) = get(&server, &app, "/apps/1/channels/room", &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["occupied"], false, "{resp}");
    let (_a, _) = public_sub(&server, "k", "room").await;
    let (_b, _) = public_sub(&server, "k", "room").await;
    let (status, resp) = get(&server, &app, "/apps/1/channels/room", &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"occupied": true}));
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels/room",
        &[("info", "subscription_count,user_count")],
    )
    .await;
    assert_eq!(
        status, 200,
        "user_count on a public channel is omitted, not refused: {resp}"
    );
    assert_eq!(resp, json!({"occupied": true, "subscription_count": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_info_presence() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (_a, _) = presence_sub(&server, &app, "presence-p", &member(json!("1"))).await;
    let (_b, _) = presence_sub(&server, &app, "presence-p", &member(json!("1"))).await;
    let (_c, _) = presence_sub(&server, &app, "presence-p", &member(json!(2))).await;
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels/presence-p",
        &[("info", "user_count,subscription_count")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"occupied": true, "subscription_count": 3, "user_count": 2})
    );
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels/presence-empty",
        &[("info", "user_count")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["occupied"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_info_cache_attribute() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels/cache-news",
        &[("info", "cache")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert!(
        resp.as_object().is_some_and(|o| o.contains_key("cache")),
        "cache attribute missing: {resp}"
    );
    assert_eq!(resp["cache"], Value::Null, "{resp}");
    let (status, _) = post_events(
        &server,
        &app,
        &json!({"name": "headline", "channel": "cache-news", "data": "{\"t\":\"hi\"}"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels/cache-news",
        &[("info", "cache")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["cache"]["data"], "{\"t\":\"hi\"}", "{resp}");
    let ttl = resp["cache"]["ttl"].as_u64().expect("ttl is a number");
    assert!(ttl > 0 && ttl <= 1800, "ttl {ttl}");
    // A subscriber now gets the cached event right after subscribing.
    let (mut c, _) = server.connect("k").await;
    let m = c.subscribe("cache-news", Some(""), None).await;
    assert_eq!(m["event"], "pusher_internal:subscription_succeeded");
    let m = next_is(&mut c, "headline").await;
    assert_eq!(m["data"], "{\"t\":\"hi\"}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_users_lists_distinct_presence_users() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (_a, _) = presence_sub(&server, &app, "presence-u", &member(json!("1"))).await;
    let (_b, _) = presence_sub(&server, &app, "presence-u", &member(json!("1"))).await;
    let (_c, _) = presence_sub(&server, &app, "presence-u", &member(json!("2"))).await;
    let (status, resp) = get(&server, &app, "/apps/1/channels/presence-u/users", &[]).await;
    assert_eq!(status, 200, "{resp}");
    let mut ids: Vec<String> = resp["users"]
        .as_array()
        .unwrap_or_else(|| panic!("users array: {resp}"))
        .iter()
        .map(|u| {
            assert_eq!(u.as_object().map(|o| o.len()), Some(1), "{u}");
            u["id"].as_str().expect("string id").to_string()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["1", "2"]);
    let (status, resp) = get(&server, &app, "/apps/1/channels/presence-none/users", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(resp, json!({"users": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_users_on_non_presence_channel_is_400() {
    let server = TestServer::start(ONE_APP).await;
    let (_a, _) = public_sub(&server, "k", "pub").await;
    for ch in ["pub", "private-x", "cache-x"] {
        let (status, resp) = get(
            &server,
            &app1(),
            &format!("/apps/1/channels/{ch}/users"),
            &[],
        )
        .await;
        assert_error(status, &resp, 400);
    }
}

// ---------------------------------------------------------------------------------------------
// terminate_connections
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_connections_closes_signed_in_user_only() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (mut signed7, sid) = server.connect("k").await;
    signin_ok(&mut signed7, &app, &sid, r#"{"id":"7"}"#).await;
    let (mut signed7b, sid) = server.connect("k").await;
    signin_ok(
        &mut signed7b,
        &app,
        &sid,
        r#"{"id":"7","user_info":{"x":1}}"#,
    )
    .await;
    let (mut signed8, sid) = server.connect("k").await;
    signin_ok(&mut signed8, &app, &sid, r#"{"id":"8"}"#).await;
    let (mut member7, _) = presence_sub(&server, &app, "presence-t", &member(json!("7"))).await;
    let (mut member7n, _) = presence_sub(&server, &app, "presence-t", &member(json!(7))).await;

    let (status, resp) = terminate_user(&server, &app, "7").await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({}));
    match signed7.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4009),
        other => panic!("expected close 4009, got {other:?}"),
    }
    match signed7b.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4009),
        other => panic!("expected close 4009, got {other:?}"),
    }
    sync(&mut signed8).await;
    sync(&mut member7).await;
    sync(&mut member7n).await;

    // Unknown user: still {}.
    let (status, resp) = terminate_user(&server, &app, "nobody").await;
    assert_eq!((status, resp), (200, json!({})));
}

// ---------------------------------------------------------------------------------------------
// Health and path prefix
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints() {
    let server = TestServer::start(ONE_APP).await;
    for path in ["/", "/up", "/ready"] {
        let (status, body) = server.raw_http("GET", path, "").await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, body) = server.raw_http("GET", "/nope", "").await;
    assert_error(status, &body, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_prefix_applies_to_websocket_and_api() {
    let server =
        TestServer::start("path_prefix=\"/ws\"\n[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\n")
            .await;
    let app = app1();
    // WebSocket under the prefix (ws_url adds it).
    let (mut c, _) = public_sub(&server, "k", "pfx").await;
    // Signed over /apps/1/events, sent to /ws/apps/1/events.
    let (status, resp) = post_events(
        &server,
        &app,
        &json!({"name": "e", "channel": "pfx", "data": "x"}),
    )
    .await;
    assert_eq!((status, resp), (200, json!({})));
    next_is(&mut c, "e").await;
    let (status, resp) = get(&server, &app, "/apps/1/channels", &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"channels": {"pfx": {}}}));

    // Without the prefix: 404 for the API and for health.
    let q = signed_query(&app, "GET", "/apps/1/channels", &[], "", now());
    let (status, resp) = server
        .raw_http("GET", &format!("/apps/1/channels?{q}"), "")
        .await;
    assert_error(status, &resp, 404);
    let (status, resp) = server.raw_http("GET", "/up", "").await;
    assert_error(status, &resp, 404);
    let (status, _) = server.raw_http("GET", "/ws/up", "").await;
    assert_eq!(status, 200);
    // And the WebSocket endpoint without the prefix refuses the upgrade.
    let url = format!("ws://{}/app/k?protocol=7", server.addr);
    let r = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("answer in time");
    assert!(r.is_err(), "websocket without the prefix must not connect");
}

// ---------------------------------------------------------------------------------------------
// App isolation
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_isolated() {
    let server = TestServer::start(TWO_APPS).await;
    let a = app1();
    let b = app2();
    let (mut in_a, _) = public_sub(&server, "k", "shared").await;
    let (_only_a, _) = public_sub(&server, "k", "only-a").await;

    // A's credentials on B's paths.
    let a_on_b = TestApp::new("2", "k", "s");
    let (status, resp) = post_events(
        &server,
        &a_on_b,
        &json!({"name": "e", "channel": "shared", "data": "x"}),
    )
    .await;
    assert_error(status, &resp, 401);
    let (status, resp) = get(&server, &a_on_b, "/apps/2/channels", &[]).await;
    assert_error(status, &resp, 401);

    // B sees none of A's channels.
    let (status, resp) = get(&server, &b, "/apps/2/channels", &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"channels": {}}));
    let (status, resp) = get(&server, &b, "/apps/2/channels/shared", &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["occupied"], false);

    // A trigger on B's "shared" does not reach A's "shared".
    let (status, _) = post_events(
        &server,
        &b,
        &json!({"name": "from-b", "channel": "shared", "data": "x"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post_events(
        &server,
        &a,
        &json!({"name": "from-a", "channel": "shared", "data": "x"}),
    )
    .await;
    assert_eq!(status, 200);
    next_is(&mut in_a, "from-a").await;
}
