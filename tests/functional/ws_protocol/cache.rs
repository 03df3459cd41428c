//! Cache channels: `pusher:cache_miss` on an empty channel, then the replay of the last event
//! to each new subscriber, for every kind of channel.

use super::*;

/// Subscribes to any kind of channel with the right credentials for it.
async fn sub_any(c: &mut WsClient, app: &TestApp, sid: &str, channel: &str, user: &str) -> Value {
    if channel.starts_with("presence-") {
        let data = json!({"user_id": user}).to_string();
        sub_presence(c, app, sid, channel, &data).await
    } else if channel.starts_with("private-") {
        sub_private(c, app, sid, channel).await
    } else {
        c.subscribe(channel, Some(""), None).await
    }
}

async fn cache_channel_flow(channel: &str) {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();

    // Empty: cache_miss right after subscription_succeeded, without data.
    let (mut c1, sid1) = server.connect("k").await;
    let ok = sub_any(&mut c1, &app, &sid1, channel, "u1").await;
    assert_succeeded(&ok, channel);
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher:cache_miss", "{m}");
    assert_eq!(m["channel"], channel, "{m}");
    assert!(
        m.get("data").is_none(),
        "cache_miss must have no data key: {m}"
    );

    // A trigger reaches the subscriber and is cached.
    trigger(&server, &app, channel, "price", "{\"v\":1}").await;
    let m = c1.recv().await;
    assert_eq!(m["event"], "price", "{m}");
    trigger(&server, &app, channel, "price", "{\"v\":2}").await;
    let m = c1.recv().await;
    assert_eq!(m["data"], "{\"v\":2}", "{m}");

    // A new subscriber gets the last event at once, and no cache_miss.
    let (mut c2, sid2) = server.connect("k").await;
    let ok = sub_any(&mut c2, &app, &sid2, channel, "u1").await;
    assert_succeeded(&ok, channel);
    let m = c2.recv().await;
    assert_eq!(m["event"], "price", "cached event expected first: {m}");
    assert_eq!(m["channel"], channel, "{m}");
    assert_eq!(m["data"], "{\"v\":2}", "the last event, byte for byte: {m}");
    c2.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_public_channel_miss_then_replay() {
    cache_channel_flow("cache-prices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_private_channel_miss_then_replay() {
    cache_channel_flow("private-cache-prices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_presence_channel_miss_then_replay() {
    cache_channel_flow("presence-cache-prices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_private_encrypted_channel_miss_then_replay() {
    cache_channel_flow("private-encrypted-cache-prices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_cache_channels_get_no_cache_miss_or_replay() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    trigger(&server, &app, "plain", "old", "{}").await;
    trigger(&server, &app, "cachex", "old", "{}").await;
    let (mut c, _) = server.connect("k").await;
    assert_succeeded(&c.subscribe("plain", Some(""), None).await, "plain");
    assert_succeeded(&c.subscribe("cachex", Some(""), None).await, "cachex");
    c.expect_silence(Duration::from_millis(300)).await;
}
