//! The request signature: what is signed (method, path, every parameter, the body through
//! `body_md5`), how (`auth_version` 1.0, the timestamp window, key case and encoding), and the
//! 401 that shows the string the server expected to be signed.

use super::*;

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

/// A presence channel's info, signed over `info` as the server must decode it and sent with
/// `info` written as `sent`: the answer must be the channel's counts.
async fn info_signed_decoded_sent_encoded(info: &str, sent: &str) {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (_c, _) = presence_sub(&server, &app, "presence-room", &member(json!("u1"))).await;
    let ts = now().to_string();
    let sig = sign_string(
        &app,
        "GET",
        "/apps/1/channels/presence-room",
        &[
            ("auth_key", "k"),
            ("auth_timestamp", ts.as_str()),
            ("auth_version", "1.0"),
            ("info", info),
        ],
    );
    let path = format!(
        "/apps/1/channels/presence-room?auth_key=k&auth_timestamp={ts}&auth_version=1.0&info={sent}&auth_signature={sig}"
    );
    let (status, resp) = server.raw_http("GET", &path, "").await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"occupied": true, "user_count": 1, "subscription_count": 1})
    );
}

/// Signed over the decoded value, sent percent-encoded (as Guzzle in pusher-http-php does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_values_are_accepted_and_decoded() {
    info_signed_decoded_sent_encoded(
        "user_count,subscription_count",
        "user_count%2Csubscription_count",
    )
    .await;
}

/// Found by the API fuzzer (fuzz/api): a space sent as `+`, as form encoding (Python's
/// `urlencode`, PHP's `http_build_query`) writes it, was kept as `+`, so a request signed over
/// the space was refused as wrongly signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plus_in_the_query_is_a_space() {
    info_signed_decoded_sent_encoded(
        "user_count, subscription_count",
        "user_count,+subscription_count",
    )
    .await;
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
