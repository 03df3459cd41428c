use crate::common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_reaches_a_public_subscriber() {
    let server = TestServer::dev().await;
    let (mut c, _sid) = server.connect("app-key").await;
    let ok = c.subscribe("orders", Some(""), None).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(ok["data"], "{}");
    let body = json!({"name": "created", "channel": "orders", "data": "{\"id\":1}"}).to_string();
    let (status, resp) = server
        .api(&TestApp::dev(), "POST", "/apps/app-id/events", &[], &body)
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({}));
    let m = c.expect_event("created").await;
    assert_eq!(m["channel"], "orders");
    assert_eq!(m["data"], "{\"id\":1}");
}
