//! `GET /apps/{id}/channels` and `GET /apps/{id}/channels/{channel}`: occupied channels and
//! their attributes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_lists_occupied_channels_only() {
    let server = TestServer::start(ONE_APP).await;
    let (status, raw) = get(&server, &app1(), "/apps/1/channels", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(raw, json!({"channels": {}}), "empty list must be an object");
    let (mut c, _) = public_sub(&server, "k", "alpha").await;
    let m = c.subscribe("beta", Some(""), None).await;
    assert_eq!(m["event"], "pusher_internal:subscription_succeeded");
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "beta"}}))
        .await;
    sync(&mut c).await;
    // A channel that only ever received a trigger is not occupied either.
    post_events(
        &server,
        &app1(),
        &json!({"name": "e", "channel": "gamma", "data": "x"}),
    )
    .await;
    let (status, resp) = get(&server, &app1(), "/apps/1/channels", &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"channels": {"alpha": {}}}));
    drop(c);
    // After the last subscriber leaves, the list is empty again.
    let mut last = Value::Null;
    for _ in 0..50 {
        let (_, resp) = get(&server, &app1(), "/apps/1/channels", &[]).await;
        last = resp;
        if last == json!({"channels": {}}) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last, json!({"channels": {}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_filter_by_prefix_and_user_count() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (_a, _) = public_sub(&server, "k", "pub-1").await;
    let (_b, _) = public_sub(&server, "k", "other").await;
    let (_m1, _) = presence_sub(&server, &app, "presence-x", &member(json!("1"))).await;
    let (_m2, _) = presence_sub(&server, &app, "presence-x", &member(json!("2"))).await;
    let (_m3, _) = presence_sub(&server, &app, "presence-x", &member(json!("2"))).await;
    let (_m4, _) = presence_sub(&server, &app, "presence-y", &member(json!("1"))).await;
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels",
        &[("filter_by_prefix", "pub-")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"channels": {"pub-1": {}}}));
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels",
        &[("filter_by_prefix", "presence-"), ("info", "user_count")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"channels": {
            "presence-x": {"user_count": 2},
            "presence-y": {"user_count": 1}
        }})
    );
    let (status, resp) = get(&server, &app, "/apps/1/channels", &[]).await;
    assert_eq!(status, 200, "{resp}");
    let names: Vec<&String> = resp["channels"]
        .as_object()
        .expect("channels object")
        .keys()
        .collect();
    assert_eq!(names.len(), 4, "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_info_public() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (status, resp) = get(&server, &app, "/apps/1/channels/room", &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["occupied"], false, "{resp}");
    let (_a, _) = public_sub(&server, "k", "room").await;
    let (_b, _) = public_sub(&server, "k", "room").await;
    let (status, resp) = get(&server, &app, "/apps/1/channels/room", &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"occupied": true}));
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels/room",
        &[("info", "subscription_count,user_count")],
    )
    .await;
    assert_eq!(
        status, 200,
        "user_count on a public channel is omitted, not refused: {resp}"
    );
    assert_eq!(resp, json!({"occupied": true, "subscription_count": 2}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_info_presence() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (_a, _) = presence_sub(&server, &app, "presence-p", &member(json!("1"))).await;
    let (_b, _) = presence_sub(&server, &app, "presence-p", &member(json!("1"))).await;
    let (_c, _) = presence_sub(&server, &app, "presence-p", &member(json!(2))).await;
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels/presence-p",
        &[("info", "user_count,subscription_count")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"occupied": true, "subscription_count": 3, "user_count": 2})
    );
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels/presence-empty",
        &[("info", "user_count")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["occupied"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_info_cache_attribute() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels/cache-news",
        &[("info", "cache")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert!(
        resp.as_object().is_some_and(|o| o.contains_key("cache")),
        "cache attribute missing: {resp}"
    );
    assert_eq!(resp["cache"], Value::Null, "{resp}");
    let (status, _) = post_events(
        &server,
        &app,
        &json!({"name": "headline", "channel": "cache-news", "data": "{\"t\":\"hi\"}"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, resp) = get(
        &server,
        &app,
        "/apps/1/channels/cache-news",
        &[("info", "cache")],
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["cache"]["data"], "{\"t\":\"hi\"}", "{resp}");
    let ttl = resp["cache"]["ttl"].as_u64().expect("ttl is a number");
    assert!(ttl > 0 && ttl <= 1800, "ttl {ttl}");
    // A subscriber now gets the cached event right after subscribing.
    let (mut c, _) = server.connect("k").await;
    let m = c.subscribe("cache-news", Some(""), None).await;
    assert_eq!(m["event"], "pusher_internal:subscription_succeeded");
    let m = next_is(&mut c, "headline").await;
    assert_eq!(m["data"], "{\"t\":\"hi\"}");
}
