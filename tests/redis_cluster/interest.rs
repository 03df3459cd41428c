//! Interest-based fan-out on one Redis: a node subscribes to a channel's bus channel while it
//! has subscribers there, and only then. Checked on the Redis side (`PUBSUB NUMSUB`) and on
//! the node's side (`redis_received_total`, `redis_bus_subscriptions`), with delivery exactly
//! once and exclusion as before; and a subscriber confirmed through a slow link to Redis gets
//! the very next event published on another node.

use crate::common::process::{metric, scrape};
use crate::common::redis::Redis;
use crate::common::tcp_proxy::TcpProxy;
use crate::common::*;
use crate::{node, APP};

use std::time::Duration;

use serde_json::json;

/// The bus channel of app 1's `channel` under `prefix` (docs/cluster.md, "Key layout").
fn bus(prefix: &str, channel: &str) -> String {
    format!("{prefix}:{{app:1}}:ch:{channel}")
}

async fn metrics_node(redis_url: &str, prefix: &str) -> (TestServer, u16) {
    let toml = format!(
        "adapter = \"redis\"\nredis_url = \"{redis_url}\"\nredis_prefix = \"{prefix}\"\n{APP}"
    );
    let (s, port) = TestServer::start_with_metrics(&toml).await;
    crate::wait_ready(&s).await;
    (s, port)
}

/// Polls until `f` holds, or fails naming `what`.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 5 s");
}

async fn received(port: u16) -> f64 {
    metric(&scrape(port).await, "clarion_redis_received_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_hears_only_the_channels_it_has_subscribers_on() {
    let redis = Redis::start();
    let (a, _) = metrics_node(&redis.url(), "i1").await;
    let (b, b_metrics) = metrics_node(&redis.url(), "i1").await;
    let (mut on_a, _) = a.connect("k").await;
    on_a.subscribe("only-a", Some(""), None).await;
    let (mut on_b, b_sid) = b.connect("k").await;
    on_b.subscribe("only-b", Some(""), None).await;
    assert_eq!(redis.subscribers(&bus("i1", "only-a")), 1);
    assert_eq!(redis.subscribers(&bus("i1", "only-b")), 1);
    let text = scrape(b_metrics).await;
    assert_eq!(
        metric(&text, "clarion_redis_bus_subscriptions"),
        1.0,
        "{text}"
    );

    // Events on a channel B has no subscriber on never reach B.
    let before = received(b_metrics).await;
    for i in 0..20 {
        trigger(&a, &app1(), "only-a", "e", &i.to_string()).await;
    }
    for i in 0..20 {
        assert_eq!(on_a.expect_event("e").await["data"], i.to_string());
    }
    assert_eq!(received(b_metrics).await, before);

    // Once B has a subscriber there, it hears them: exactly once, exclusion kept.
    on_b.subscribe("only-a", Some(""), None).await;
    assert_eq!(redis.subscribers(&bus("i1", "only-a")), 2);
    trigger(&a, &app1(), "only-a", "f", "1").await;
    on_b.expect_event("f").await;
    let body = json!({"name": "g", "channel": "only-a", "data": "{}", "socket_id": b_sid});
    trigger_raw(&a, &app1(), &body.to_string()).await;
    on_a.expect_event("f").await;
    on_a.expect_event("g").await;
    on_b.expect_silence(Duration::from_millis(300)).await;

    // The last subscriber leaves: so does the node.
    on_b.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "only-a"}}))
        .await;
    eventually("B left only-a's bus channel", || {
        redis.subscribers(&bus("i1", "only-a")) == 1
    })
    .await;
    let before = received(b_metrics).await;
    trigger(&a, &app1(), "only-a", "h", "1").await;
    on_a.expect_event("h").await;
    assert_eq!(received(b_metrics).await, before);

    // A connection that goes away takes its channels' bus subscriptions with it.
    drop(on_b);
    eventually("B left only-b's bus channel", || {
        redis.subscribers(&bus("i1", "only-b")) == 0
    })
    .await;
    let text = scrape(b_metrics).await;
    assert_eq!(
        metric(&text, "clarion_redis_bus_subscriptions"),
        0.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_slow_link_the_first_event_after_subscribing_arrives() {
    let redis = Redis::start();
    // B's bus subscriptions reach Redis 300 ms late (its other commands at once): a
    // subscriber confirmed before B's bus subscription is in place would miss the event A
    // publishes right after.
    let slow = TcpProxy::slow_subscriptions(
        &format!("127.0.0.1:{}", redis.port),
        Duration::from_millis(300),
    )
    .await;
    let a = node(&redis, "i2", "").await;
    let (b, _) = metrics_node(&format!("redis://127.0.0.1:{}/0", slow.port), "i2").await;
    let (mut on_b, _) = b.connect("k").await;
    for i in 0..10 {
        let channel = format!("fresh-{i}");
        on_b.subscribe(&channel, Some(""), None).await;
        trigger(&a, &app1(), &channel, "first", &i.to_string()).await;
        let m = on_b.expect_event("first").await;
        assert_eq!(m["channel"], channel.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_restart_every_channel_with_subscribers_is_heard_again() {
    let mut redis = Redis::start();
    let a = node(&redis, "i3", "").await;
    let b = node(&redis, "i3", "").await;
    let mut clients = Vec::new();
    for i in 0..5 {
        let (mut c, _) = b.connect("k").await;
        c.subscribe(&format!("kept-{i}"), Some(""), None).await;
        clients.push(c);
    }
    redis.stop();
    redis.spawn();
    eventually("B subscribed its channels again", || {
        (0..5).all(|i| redis.subscribers(&bus("i3", &format!("kept-{i}"))) == 1)
    })
    .await;
    // A's command connection comes back by itself, at its own pace: until it has, its
    // publishes fail (and are not retried), so the first channel is tried until one arrives.
    let mut back = false;
    for _ in 0..50 {
        trigger(&a, &app1(), "kept-0", "back", "1").await;
        if clients[0]
            .try_recv(Duration::from_millis(200))
            .await
            .is_some_and(|m| m["event"] == "back")
        {
            back = true;
            break;
        }
    }
    assert!(back, "cross-node delivery must resume after Redis returns");
    for (i, c) in clients.iter_mut().enumerate().skip(1) {
        trigger(&a, &app1(), &format!("kept-{i}"), "back", "1").await;
        c.expect_event("back").await;
        c.expect_silence(Duration::from_millis(100)).await;
    }
}
