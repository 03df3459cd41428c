//! The live subscription count (docs/protocol.md §10.2): `pusher_internal:subscription_count`
//! to every subscriber of a non-presence channel after each subscribe and unsubscribe, when
//! the app enables it; throttled to one frame per 5 s above 100 subscriptions.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

const APP: &str =
    "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenable_subscription_count = true\n";

/// The count a `pusher_internal:subscription_count` frame carries.
fn count_of(m: &Value) -> u64 {
    assert_eq!(m["event"], "pusher_internal:subscription_count", "{m}");
    decode_data(m)["subscription_count"]
        .as_u64()
        .unwrap_or_else(|| panic!("a count in {m}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_hears_each_change_after_its_own_succeeded() {
    let server = TestServer::start(APP).await;
    let (mut a, _) = server.connect("k").await;
    assert_succeeded(&a.subscribe("news", Some(""), None).await, "news");
    let m = a.recv().await;
    assert_eq!(m["channel"], "news");
    assert_eq!(count_of(&m), 1);
    let (mut b, _) = server.connect("k").await;
    assert_succeeded(&b.subscribe("news", Some(""), None).await, "news");
    assert_eq!(count_of(&b.recv().await), 2, "the new subscriber included");
    assert_eq!(count_of(&a.recv().await), 2);
    b.send(serde_json::json!({"event": "pusher:unsubscribe", "data": {"channel": "news"}}))
        .await;
    assert_eq!(count_of(&a.recv().await), 1);
    drop(b);
    a.expect_silence(Duration::from_millis(200)).await;
    // A disconnect counts as leaving.
    let (mut c, _) = server.connect("k").await;
    assert_succeeded(&c.subscribe("news", Some(""), None).await, "news");
    assert_eq!(count_of(&a.recv().await), 2);
    drop(c);
    assert_eq!(count_of(&a.recv().await), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_apps_without_the_switch_get_no_count() {
    let server = TestServer::start(&format!(
        "{APP}[[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"s2\"\n"
    ))
    .await;
    let app = app1();
    let (mut p, sid) = server.connect("k").await;
    let data = r#"{"user_id":"1"}"#;
    let auth = channel_auth(&app, &sid, "presence-room", Some(data));
    assert_succeeded(
        &p.subscribe("presence-room", Some(&auth), Some(data)).await,
        "presence-room",
    );
    p.expect_silence(Duration::from_millis(200)).await;
    let (mut off, _) = server.connect("k2").await;
    assert_succeeded(&off.subscribe("news", Some(""), None).await, "news");
    off.expect_silence(Duration::from_millis(200)).await;
}

/// On a cache channel the count comes after the `cache_miss` (or the replayed event) and is
/// never kept as the channel's last event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_channel_never_caches_the_count() {
    let server = TestServer::start(APP).await;
    let (mut a, _) = server.connect("k").await;
    assert_succeeded(
        &a.subscribe("cache-news", Some(""), None).await,
        "cache-news",
    );
    assert_eq!(a.recv().await["event"], "pusher:cache_miss");
    assert_eq!(count_of(&a.recv().await), 1);
    let (mut b, _) = server.connect("k").await;
    assert_succeeded(
        &b.subscribe("cache-news", Some(""), None).await,
        "cache-news",
    );
    assert_eq!(
        b.recv().await["event"],
        "pusher:cache_miss",
        "the count was not cached"
    );
    assert_eq!(count_of(&b.recv().await), 2);
}

/// 110 subscribers joining at once: each subscriber's counts only go up, the channel's counts
/// over 100 reach a subscriber at most once per 5 s, and the last one is the latest count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_channel_gets_at_most_one_count_per_five_seconds() {
    let server = TestServer::start(APP).await;
    let (mut first, _) = server.connect("k").await;
    assert_succeeded(&first.subscribe("busy", Some(""), None).await, "busy");
    let joins = (0..109).map(|_| {
        let server = &server;
        async move {
            let (mut c, _) = server.connect("k").await;
            assert_succeeded(&c.subscribe("busy", Some(""), None).await, "busy");
            c
        }
    });
    let _others = futures_util::future::join_all(joins).await;
    let started = Instant::now();
    let mut seen = Vec::new();
    while let Some(m) = first.try_recv(Duration::from_millis(6500)).await {
        seen.push((count_of(&m), started.elapsed()));
        if seen.last().is_some_and(|(n, _)| *n == 110) {
            break;
        }
    }
    let counts: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "only up: {counts:?}"
    );
    assert_eq!(
        counts.last(),
        Some(&110),
        "the latest count arrives: {counts:?}"
    );
    let over: Vec<&(u64, Duration)> = seen.iter().filter(|(n, _)| *n > 100).collect();
    assert_eq!(over.len(), 1, "one frame over 100 within 5 s: {counts:?}");
    first.expect_silence(Duration::from_millis(300)).await;
}
