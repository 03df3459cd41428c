//! HTTP API rate limits per app: backend events and read requests per second, answered 429.

use crate::common::*;

use std::time::Duration;

use serde_json::json;

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nmax_backend_events_per_second = 2\nmax_read_requests_per_second = 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_events_over_the_limit_get_429_and_are_not_delivered() {
    let server = TestServer::start(APP).await;
    let app = TestApp::new("1", "k", "s");
    let (mut c, _) = server.connect("k").await;
    c.subscribe("orders", Some(""), None).await;
    let body =
        |n: u32| json!({"name": format!("e{n}"), "channel": "orders", "data": "{}"}).to_string();
    for n in 0..2 {
        assert_eq!(
            server
                .api(&app, "POST", "/apps/1/events", &[], &body(n))
                .await
                .0,
            200
        );
    }
    let (status, err) = server
        .api(&app, "POST", "/apps/1/events", &[], &body(2))
        .await;
    assert_eq!(status, 429, "{err}");
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("2 backend events per second")),
        "{err}"
    );
    c.expect_event("e0").await;
    c.expect_event("e1").await;
    c.expect_silence(Duration::from_millis(200)).await;

    // A batch counts item by item: 3 events never fit in a budget of 2.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let batch = json!({"batch": [
        {"name": "b0", "channel": "orders", "data": "{}"},
        {"name": "b1", "channel": "orders", "data": "{}"},
        {"name": "b2", "channel": "orders", "data": "{}"}
    ]})
    .to_string();
    assert_eq!(
        server
            .api(&app, "POST", "/apps/1/batch_events", &[], &batch)
            .await
            .0,
        429
    );
    c.expect_silence(Duration::from_millis(200)).await;
    // The budget is still there for what fits.
    assert_eq!(
        server
            .api(&app, "POST", "/apps/1/events", &[], &body(9))
            .await
            .0,
        200
    );
    c.expect_event("e9").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_requests_over_the_limit_get_429() {
    let server = TestServer::start(APP).await;
    let app = TestApp::new("1", "k", "s");
    assert_eq!(
        server.api(&app, "GET", "/apps/1/channels", &[], "").await.0,
        200
    );
    let (status, err) = server.api(&app, "GET", "/apps/1/channels/x", &[], "").await;
    assert_eq!(status, 429, "{err}");
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("read requests")),
        "{err}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        server
            .api(&app, "GET", "/apps/1/connections", &[], "")
            .await
            .0,
        200
    );
}
