//! Prometheus metrics: values move with the load and return to zero when it goes away.

use crate::common::process::scrape;
use crate::common::*;

use std::time::Duration;

use serde_json::json;

/// The value of one series (`name{labels}`), 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenable_client_messages = true\nmax_client_events_per_second = 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_the_load_and_return_to_zero() {
    let (server, port) = TestServer::start_with_metrics(APP).await;
    let app = TestApp::new("1", "k", "s");
    let (mut a, a_sid) = server.connect("k").await;
    let (mut b, b_sid) = server.connect("k").await;
    for (c, sid, user) in [(&mut a, &a_sid, "1"), (&mut b, &b_sid, "2")] {
        let data = json!({"user_id": user}).to_string();
        let auth = channel_auth(&app, sid, "presence-room", Some(&data));
        c.subscribe("presence-room", Some(&auth), Some(&data)).await;
    }
    a.subscribe("news", Some(""), None).await;
    let body = json!({"name": "e", "channel": "news", "data": "{}"}).to_string();
    assert_eq!(
        server
            .api(&app, "POST", "/apps/1/events", &[], &body)
            .await
            .0,
        200
    );
    a.expect_event("e").await;
    a.send(json!({"event": "client-x", "channel": "presence-room", "data": {}}))
        .await;
    a.send(json!({"event": "client-x", "channel": "presence-room", "data": {}}))
        .await; // rate-limited
    b.expect_event("client-x").await;
    a.expect_event("pusher:error").await;

    let m = scrape(port).await;
    let app_label = "{app_id=\"1\"}";
    assert_eq!(
        value(&m, &format!("clarion_connected{app_label}")),
        2.0,
        "{m}"
    );
    assert_eq!(
        value(&m, &format!("clarion_channels{app_label}")),
        2.0,
        "{m}"
    );
    assert_eq!(
        value(&m, &format!("clarion_presence_members{app_label}")),
        2.0,
        "{m}"
    );
    assert_eq!(
        value(&m, &format!("clarion_new_connections_total{app_label}")),
        2.0,
        "{m}"
    );
    assert_eq!(
        value(&m, &format!("clarion_client_events_total{app_label}")),
        1.0,
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            &format!("clarion_rate_limit_rejections_total{app_label}")
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        value(&m, &format!("clarion_http_calls_received_total{app_label}")),
        1.0,
        "{m}"
    );
    assert!(
        value(&m, &format!("clarion_http_received_bytes{app_label}")) >= body.len() as f64,
        "{m}"
    );
    assert!(
        value(&m, &format!("clarion_ws_messages_sent_total{app_label}")) >= 8.0,
        "{m}"
    );
    assert!(
        value(&m, &format!("clarion_socket_transmitted_bytes{app_label}")) > 100.0,
        "{m}"
    );
    assert!(
        value(
            &m,
            &format!("clarion_ws_messages_received_total{app_label}")
        ) >= 5.0,
        "{m}"
    );
    assert!(
        value(&m, "clarion_broadcast_fanout_seconds_count") >= 1.0,
        "{m}"
    );

    drop(a);
    drop(b);
    let mut m = String::new();
    for _ in 0..50 {
        m = scrape(port).await;
        if value(&m, &format!("clarion_connected{app_label}")) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        value(&m, &format!("clarion_connected{app_label}")),
        0.0,
        "{m}"
    );
    assert_eq!(
        value(&m, &format!("clarion_channels{app_label}")),
        0.0,
        "{m}"
    );
    assert_eq!(
        value(&m, &format!("clarion_presence_members{app_label}")),
        0.0,
        "{m}"
    );
    assert_eq!(
        value(&m, &format!("clarion_new_disconnections_total{app_label}")),
        2.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prefix_is_configurable() {
    let (server, port) =
        TestServer::start_with_metrics(&format!("metrics_prefix = \"soketi\"\n{APP}")).await;
    let (_c, _) = server.connect("k").await;
    let m = scrape(port).await;
    assert_eq!(value(&m, "soketi_connected{app_id=\"1\"}"), 1.0, "{m}");
    assert!(!m.contains("clarion_"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_memory_and_connections() {
    let server = TestServer::start(APP).await;
    let (mut c, _) = server.connect("k").await;
    c.subscribe("news", Some(""), None).await;
    let (status, body) = server.raw_http("GET", "/usage", "").await;
    assert_eq!(status, 200);
    assert!(
        body["memory"]["rss_bytes"]
            .as_u64()
            .is_some_and(|b| b > 1_000_000),
        "{body}"
    );
    assert_eq!(body["connections"], 1, "{body}");
    assert_eq!(body["apps"]["1"], json!({"connections": 1, "channels": 1}));
}

/// The soak's gauges (issue 19) on the real binary, whose runtime holds nothing but the
/// server's own tasks: `runtime_tasks` grows with connections, and `queued_frames` (added up at
/// the scrape from every connection's outbound queue) rises while a subscriber does not read
/// and its channel is flooded, then returns to zero when it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_queued_frames_follow_connections_and_a_reader_that_stops() {
    use crate::common::process::{metric, wait_for_metrics, Process};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    // A queue far larger than the flood needs: this test wants frames queued, not a 4100.
    let config = "outbound_queue_size = 100000\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nmax_event_batch_size = 100\nmax_event_payload_size = 65536\n";
    let server = Process::start(config, &[]).await;
    let app = TestApp::new("1", "k", "s");
    let before = server.metrics().await;
    for gauge in ["clarion_runtime_tasks ", "clarion_queued_frames "] {
        assert!(before.contains(gauge), "no {gauge}in\n{before}");
    }
    let tasks_before = metric(&before, "clarion_runtime_tasks");
    assert!(tasks_before > 0.0, "{before}");
    assert_eq!(metric(&before, "clarion_queued_frames"), 0.0);

    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(server.connect("k").await.0);
    }
    let with_20 = metric(&server.metrics().await, "clarion_runtime_tasks");
    assert!(
        with_20 >= tasks_before + 20.0,
        "20 connections: {tasks_before} tasks before, {with_20} after"
    );

    // A subscriber with a tiny receive buffer that stops reading once subscribed.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.addr).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(server.ws_url("k"), stream)
        .await
        .expect("handshake");
    let sub = json!({"event": "pusher:subscribe", "data": {"channel": "busy"}});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .expect("subscribe");
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("subscription_succeeded") => break,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no subscription_succeeded: {other:?}"),
        }
    }
    // Flood `busy` until its frames back up behind the full socket (a few MB of kernel
    // buffers first; 40 MB at most).
    let pad = "x".repeat(8 * 1024);
    let batch: Vec<_> = (0..10)
        .map(|_| json!({"name": "e", "channel": "busy", "data": pad}))
        .collect();
    let body = json!({ "batch": batch }).to_string();
    let mut queued = 0.0;
    for _ in 0..500 {
        let (status, _) = server
            .api(&app, "POST", "/apps/1/batch_events", &body)
            .await;
        assert_eq!(status, 200);
        queued = metric(&server.metrics().await, "clarion_queued_frames");
        if queued > 0.0 {
            break;
        }
    }
    assert!(
        queued > 0.0,
        "no frames queued behind a reader that stopped"
    );

    drop(ws);
    drop(held);
    wait_for_metrics(
        server.metrics_port,
        Duration::from_secs(10),
        &[("clarion_queued_frames", 0.0)],
    )
    .await;
}
