//! `direct_writes` (`src/channels/direct.rs`), on by default: broadcasters write frames straight
//! to idle plain sockets; with it off, the connection tasks write everything. Through the real
//! server, either way: a channel large enough for its writes to be spread over helper threads
//! (`spread.rs`) and a small one get every event, whole and in order, with events spaced so
//! that most go out by direct writes and some close together so that the task path takes over;
//! and the metrics count every frame, whoever wrote it.

use crate::common::process::wait_for_metrics;
use crate::common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_every_event_in_order_with_direct_writes() {
    // On by default.
    every_event_whole_in_order_and_counted("", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn and_without_them() {
    every_event_whole_in_order_and_counted("direct_writes = false", false).await;
}

async fn every_event_whole_in_order_and_counted(config: &str, direct: bool) {
    let (server, metrics) = TestServer::start_with_metrics(config).await;
    assert_eq!(server.config.direct_writes, direct);
    let mut big = Vec::new();
    for _ in 0..300 {
        let (mut c, _) = server.connect("app-key").await;
        let ok = c.subscribe("big", Some(""), None).await;
        assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");
        big.push(c);
    }
    let (mut small, _) = server.connect("app-key").await;
    small.subscribe("small", Some(""), None).await;
    for n in 0..30 {
        // Every third event right after the previous one (the connection is "hot": its task
        // writes it), the rest 10 ms apart (idle: the broadcaster writes).
        if n % 3 != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let data = json!({ "n": n, "pad": "x".repeat(n * 20) }).to_string();
        let body = json!({"name": "e", "channels": ["big", "small"], "data": data}).to_string();
        let (status, resp) = server
            .api(&TestApp::dev(), "POST", "/apps/app-id/events", &[], &body)
            .await;
        assert_eq!(status, 200, "{resp}");
    }
    for c in big.iter_mut().chain(std::iter::once(&mut small)) {
        for n in 0..30 {
            let m = c.expect_event("e").await;
            assert_eq!(decode_data(&m)["n"], n, "in order");
            assert_eq!(
                decode_data(&m)["pad"].as_str().map(str::len),
                Some(n as usize * 20)
            );
        }
    }
    // Each connection got `connection_established`, `subscription_succeeded` and 30 events,
    // counted once each whether its task or a broadcaster wrote them (`CountSent`).
    let frames = 301.0 * 32.0;
    wait_for_metrics(
        metrics,
        Duration::from_secs(5),
        &[("clarion_ws_messages_sent_total{app_id=\"app-id\"}", frames)],
    )
    .await;
}
