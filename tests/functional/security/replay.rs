//! SECURITY.md 1, "HTTP API requests older (or newer) than 600 s are refused": what a captured,
//! correctly signed API request can and cannot be used for.

use super::*;

/// Pusher semantics: a signed request is valid for ±600 s around its `auth_timestamp`, and the
/// server keeps no memory of the requests it has seen, so the same signed request sent again
/// within the window is accepted again (and delivered again). Idempotency is the client's job;
/// the window bounds how long a captured request stays usable. What a capture does NOT allow
/// is any change: another body, another endpoint, another app, another parameter or a fresh
/// timestamp all break the signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_api_request_replays_only_unchanged_and_within_the_window() {
    let server = TestServer::start(TWO_APPS).await;
    let a = app_a();
    let (mut sub, _) = server.connect("key-a").await;
    assert_succeeded(&sub.subscribe("news", Some(""), None).await, "news");

    // Inside the window, both ways.
    for offset in [-590, 590] {
        let body = json!({"name": "edge", "channel": "news", "data": "{}"}).to_string();
        let q = signed_query(&a, "POST", "/apps/app-a/events", &[], &body, now() + offset);
        let (status, resp) = server
            .raw_http("POST", &format!("/apps/app-a/events?{q}"), &body)
            .await;
        assert_eq!(status, 200, "timestamp {offset:+} s: {resp}");
        next_is_on(&mut sub, "edge", "news").await;
    }

    let body = json!({"name": "once", "channel": "news", "data": "{\"n\":1}"}).to_string();
    let q = signed_query(&a, "POST", "/apps/app-a/events", &[], &body, now() - 30);
    let url = format!("/apps/app-a/events?{q}");
    // The same bytes twice: both accepted, both delivered.
    for _ in 0..2 {
        let (status, resp) = server.raw_http("POST", &url, &body).await;
        assert_eq!((status, resp), (200, json!({})));
        let m = next_is_on(&mut sub, "once", "news").await;
        assert_eq!(m["data"], "{\"n\":1}");
    }

    // Changes to the captured request.
    let other_body = json!({"name": "forged", "channel": "news", "data": "{}"}).to_string();
    let fresh = format!("auth_timestamp={}", now());
    let stale_ts = q
        .split('&')
        .find_map(|p| p.strip_prefix("auth_timestamp="))
        .expect("auth_timestamp in the query");
    let refreshed = q.replace(&format!("auth_timestamp={stale_ts}"), &fresh);
    assert_ne!(refreshed, q);
    let batch_body = json!({"batch": [{"name": "forged", "channel": "news", "data": "{}"}]});
    for (what, method, url, body) in [
        ("another body", "POST", url.clone(), other_body.clone()),
        (
            "another endpoint",
            "POST",
            format!("/apps/app-a/batch_events?{q}"),
            body.clone(),
        ),
        (
            "another endpoint and body",
            "POST",
            format!("/apps/app-a/batch_events?{q}"),
            batch_body.to_string(),
        ),
        (
            "another app",
            "POST",
            format!("/apps/app-b/events?{q}"),
            body.clone(),
        ),
        (
            "an added parameter",
            "POST",
            format!("{url}&socket_id=1.1"),
            body.clone(),
        ),
        (
            "a fresh timestamp",
            "POST",
            format!("/apps/app-a/events?{refreshed}"),
            body.clone(),
        ),
        ("another method", "PUT", url.clone(), body.clone()),
    ] {
        let (status, resp) = server.raw_http(method, &url, &body).await;
        assert!(
            status == 401 || status == 405,
            "{what}: a changed replay must be refused, got {status} {resp}"
        );
        if status == 401 {
            assert_401_json(what, status, &resp);
        }
    }
    // A signed query also covers the query of a read.
    let q = signed_query(
        &a,
        "GET",
        "/apps/app-a/channels",
        &[("filter_by_prefix", "presence-")],
        "",
        now(),
    );
    let changed = q.replace("filter_by_prefix=presence-", "filter_by_prefix=private-");
    let (status, resp) = server
        .raw_http("GET", &format!("/apps/app-a/channels?{changed}"), "")
        .await;
    assert_401_json("changed filter_by_prefix", status, &resp);
    assert_nothing_queued(&mut sub, "the subscriber after refused replays").await;
}
