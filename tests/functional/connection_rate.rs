//! `new_connections_per_ip_per_second` and `trusted_proxies`: a client address over its budget
//! gets `pusher:error` 4100 and close 4100 (pusher-js retries after a second); other addresses
//! are unaffected; `X-Forwarded-For` counts only when the peer is a trusted proxy.

use std::time::Duration;

use crate::common::{Closed, TestServer, WsClient};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

/// Connects with an optional `X-Forwarded-For`; true when `connection_established` arrives,
/// false when the server refuses with 4100 (asserted: error first, then the same close code).
async fn attempt(server: &TestServer, forwarded_for: Option<&str>) -> bool {
    let mut req = server
        .ws_url("k", "?protocol=7")
        .into_client_request()
        .expect("request");
    if let Some(ff) = forwarded_for {
        req.headers_mut().insert(
            "x-forwarded-for",
            HeaderValue::from_str(ff).expect("header"),
        );
    }
    let (ws, _) = tokio::time::timeout(crate::common::WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connect in time")
        .expect("handshake");
    let mut c = WsClient { ws };
    let first = c.recv().await;
    match first["event"].as_str() {
        Some("pusher:connection_established") => true,
        Some("pusher:error") => {
            assert_eq!(first["data"]["code"], 4100, "{first}");
            match c.closed().await {
                Closed::Code(code, reason) => {
                    assert_eq!(code, 4100);
                    assert!(reason.contains("too many new connections"), "{reason}");
                }
                other => panic!("expected close 4100, got {other:?}"),
            }
            false
        }
        _ => panic!("unexpected first message {first}"),
    }
}

#[tokio::test]
async fn an_address_over_its_budget_gets_4100_and_a_new_window_lets_it_in() {
    let server = TestServer::start(&format!("new_connections_per_ip_per_second = 3\n{APP}")).await;
    let t0 = tokio::time::Instant::now();
    for i in 0..3 {
        assert!(
            attempt(&server, None).await,
            "connection {i} is within the budget"
        );
    }
    assert!(
        !attempt(&server, None).await,
        "the fourth in a second is refused"
    );
    tokio::time::sleep_until(t0 + Duration::from_millis(1100)).await;
    assert!(attempt(&server, None).await, "a new second, a new budget");
}

#[tokio::test]
async fn the_limit_is_off_by_default() {
    let server = TestServer::start(APP).await;
    for i in 0..40 {
        assert!(attempt(&server, None).await, "connection {i}");
    }
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let server = TestServer::start(&format!(
        "new_connections_per_ip_per_second = 2\ntrusted_proxies = [\"127.0.0.1\"]\n{APP}"
    ))
    .await;
    assert!(attempt(&server, Some("203.0.113.1")).await);
    assert!(attempt(&server, Some("203.0.113.1")).await);
    assert!(
        !attempt(&server, Some("203.0.113.1")).await,
        "same client, third"
    );
    // Another client behind the same proxy has its own budget; a spoofed left-most entry
    // written by the client does not change who it is.
    assert!(attempt(&server, Some("203.0.113.2")).await);
    assert!(!attempt(&server, Some("198.51.100.9, 203.0.113.1")).await);
}

#[tokio::test]
async fn forwarded_for_from_anyone_else_is_ignored() {
    let server = TestServer::start(&format!(
        "new_connections_per_ip_per_second = 2\ntrusted_proxies = [\"10.0.0.0/8\"]\n{APP}"
    ))
    .await;
    assert!(attempt(&server, Some("203.0.113.1")).await);
    assert!(attempt(&server, Some("203.0.113.2")).await);
    assert!(
        !attempt(&server, Some("203.0.113.3")).await,
        "loopback is not a trusted proxy: every attempt counts against 127.0.0.1"
    );
}

#[tokio::test]
async fn a_bad_trusted_proxy_entry_is_named() {
    let mut c = clarion::config::Config::from_toml("trusted_proxies = [\"10.0.0.0/8\", \"nope\"]")
        .expect("parses");
    let e = c.finish().expect_err("invalid entry");
    assert!(e.contains("trusted_proxies[1]"), "{e}");
}
