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
