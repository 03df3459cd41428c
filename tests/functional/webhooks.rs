//! Webhooks, received by a real local HTTP server.

use crate::common::receiver::{Answer, Receiver};
use crate::common::*;

use std::time::Duration;

use serde_json::json;

fn config(receiver: &Receiver, extra_app: &str, extra_hook: &str) -> String {
    format!(
        "webhook_delay_ms = 400\nwebhook_timeout_ms = 300\nwebhook_retry_seconds = 10\n\
         [[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenable_client_messages = true\n{extra_app}\n\
         [[apps.webhooks]]\nurl = \"{}\"\n{extra_hook}\n",
        receiver.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occupied_and_vacated_are_signed_and_vacated_is_delayed() {
    let mut rx = Receiver::start(vec![]).await;
    let server = TestServer::start(&config(&rx, "", "")).await;
    let (mut c, _) = server.connect("k").await;
    c.subscribe("orders", Some(""), None).await;
    // occupied and subscription_count are sent concurrently: take both, in either order.
    let (h1, h2) = (rx.next().await, rx.next().await);
    let (hook, sub_count) = if h1.events()[0]["name"] == "channel_occupied" {
        (h1, h2)
    } else {
        (h2, h1)
    };
    assert_eq!(sub_count.events()[0]["name"], "subscription_count");
    // Headers and signature over the exact body bytes.
    assert_eq!(hook.headers["content-type"], "application/json");
    assert_eq!(hook.headers["x-pusher-key"], "k");
    assert_eq!(
        hook.headers["x-pusher-signature"].to_str().expect("ascii"),
        hmac_hex("s", &hook.body)
    );
    let body = hook.json();
    assert!(
        body["time_ms"]
            .as_u64()
            .is_some_and(|t| t > 1_600_000_000_000),
        "{body}"
    );
    assert_eq!(
        body["events"],
        json!([{"name": "channel_occupied", "channel": "orders"}])
    );
    assert!(
        !hook.body.contains(": ") && !hook.body.contains('\n'),
        "compact JSON: {}",
        hook.body
    );

    assert_eq!(sub_count.events()[0]["subscription_count"], 1);

    let left_at = std::time::Instant::now();
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "orders"}}))
        .await;
    let vacated = rx.next_named("channel_vacated").await;
    assert!(
        left_at.elapsed() >= Duration::from_millis(350),
        "vacated must be held back"
    );
    assert_eq!(
        vacated.events()[0],
        json!({"name": "channel_vacated", "channel": "orders"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_return_cancels_vacated_and_member_removed() {
    let mut rx = Receiver::start(vec![]).await;
    let server = TestServer::start(&config(&rx, "", "event_types = [\"channel_occupied\", \"channel_vacated\", \"member_added\", \"member_removed\"]")).await;
    let (mut c, sid) = server.connect("k").await;
    let data = json!({"user_id": 7}).to_string();
    let auth = channel_auth(&app1(), &sid, "presence-room", Some(&data));
    c.subscribe("presence-room", Some(&auth), Some(&data)).await;
    // Sent concurrently: take both, in either order.
    let mut first = vec![
        rx.next().await.events()[0].clone(),
        rx.next().await.events()[0].clone(),
    ];
    first.sort_by_key(|e| e["name"].as_str().unwrap_or("").to_string());
    assert_eq!(
        first,
        vec![
            json!({"name": "channel_occupied", "channel": "presence-room"}),
            json!({"name": "member_added", "channel": "presence-room", "user_id": 7}),
        ]
    );
    // A page reload: leave and come back within the delay.
    drop(c);
    let (mut again, sid) = server.connect("k").await;
    let auth = channel_auth(&app1(), &sid, "presence-room", Some(&data));
    again
        .subscribe("presence-room", Some(&auth), Some(&data))
        .await;
    rx.nothing(Duration::from_millis(900)).await;
    // Leaving for good does produce both, after the delay.
    drop(again);
    assert_eq!(
        rx.next_sorted(2, "name").await,
        vec!["channel_vacated", "member_removed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_cache_miss_and_filters() {
    let mut rx = Receiver::start(vec![]).await;
    let extra = "event_types = [\"client_event\", \"cache_miss\"]\nfilter = { channel_name_starts_with = \"presence-\" }\nheaders = { \"X-Tenant\" = \"marketplace\", \"X-Pusher-Signature\" = \"forged\" }";
    let server = TestServer::start(&config(&rx, "", extra)).await;
    let (mut a, a_sid) = server.connect("k").await;
    let (mut b, b_sid) = server.connect("k").await;
    for (c, sid, user) in [(&mut a, &a_sid, json!("u1")), (&mut b, &b_sid, json!(2))] {
        let data = json!({"user_id": user}).to_string();
        let auth = channel_auth(&app1(), sid, "presence-chat", Some(&data));
        c.subscribe("presence-chat", Some(&auth), Some(&data)).await;
    }
    b.send(json!({"event": "client-typing", "channel": "presence-chat", "data": {"typing": true}}))
        .await;
    let hook = rx.next().await;
    assert_eq!(hook.headers["x-tenant"], "marketplace");
    assert_eq!(
        hook.headers["x-pusher-signature"].to_str().expect("ascii"),
        hmac_hex("s", &hook.body)
    );
    assert_eq!(
        hook.events()[0],
        json!({"name": "client_event", "channel": "presence-chat", "event": "client-typing",
               "data": "{\"typing\":true}", "socket_id": b_sid, "user_id": 2})
    );
    // Filtered out: a cache miss on a channel that does not start with presence-.
    a.subscribe("cache-prices", Some(""), None).await;
    rx.nothing(Duration::from_millis(400)).await;
    let data = json!({"user_id": "u1"}).to_string();
    let auth = channel_auth(&app1(), &a_sid, "presence-cache-room", Some(&data));
    a.subscribe("presence-cache-room", Some(&auth), Some(&data))
        .await;
    let miss = rx.next().await;
    assert_eq!(
        miss.events()[0],
        json!({"name": "cache_miss", "channel": "presence-cache-room"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_500_and_timeouts_but_not_after_400() {
    let mut rx = Receiver::start(vec![
        Answer::Status(500),
        Answer::Hang,
        Answer::Status(200),
        Answer::Status(400),
    ])
    .await;
    let server = TestServer::start(&config(&rx, "", "event_types = [\"channel_occupied\"]")).await;
    let (mut c, _) = server.connect("k").await;
    c.subscribe("first", Some(""), None).await;
    // 500, then a request that hangs past the timeout, then success: the same body three times.
    let first = rx.next().await;
    let second = rx.next().await;
    let third = rx.next().await;
    assert_eq!(first.body, second.body);
    assert_eq!(second.body, third.body);
    // A 400 is final: one request only.
    c.subscribe("second", Some(""), None).await;
    let refused = rx.next().await;
    assert_eq!(refused.events()[0]["channel"], "second");
    rx.nothing(Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_puts_several_events_in_one_request() {
    let mut rx = Receiver::start(vec![]).await;
    let server = TestServer::start(&config(
        &rx,
        "webhook_batching = true",
        "event_types = [\"channel_occupied\"]",
    ))
    .await;
    let (mut c, _) = server.connect("k").await;
    for ch in ["a", "b", "c"] {
        c.send(json!({"event": "pusher:subscribe", "data": {"channel": ch}}))
            .await;
    }
    let hook = rx.next().await;
    let mut channels: Vec<String> = hook
        .events()
        .iter()
        .map(|e| e["channel"].as_str().unwrap_or("").to_string())
        .collect();
    channels.sort();
    assert_eq!(channels, vec!["a", "b", "c"], "{}", hook.body);
    assert_eq!(
        hook.headers["x-pusher-signature"].to_str().expect("ascii"),
        hmac_hex("s", &hook.body)
    );
}
