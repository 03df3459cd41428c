//! Routing: wrong methods (405), unknown endpoints (404), the health endpoints and the path
//! prefix.

use super::*;

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

/// `/app/{key}` is the WebSocket endpoint: a plain GET is told to upgrade (426), a POST is 405,
/// and neither opens a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_endpoint_without_an_upgrade_is_426() {
    let server = TestServer::start(ONE_APP).await;
    let (status, body) = server.raw_http("GET", "/app/k", "").await;
    assert_eq!(status, 426, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("WebSocket")),
        "{body}"
    );
    let (status, body) = server.raw_http("POST", "/app/k", "").await;
    assert_eq!(status, 405, "{body}");
}
