//! The Redis adapter: two or more Clarion nodes sharing a real `redis-server` (started by each
//! test on a free port, so it can be stopped and restarted) behave as one server.

#[path = "redis_cluster/app_store.rs"]
mod app_store;
#[path = "redis_cluster/cluster.rs"]
mod cluster;
mod common;
#[path = "redis_cluster/interest.rs"]
mod interest;
#[path = "redis_cluster/sentinel.rs"]
mod sentinel;
#[path = "redis_cluster/tls.rs"]
mod tls;
#[path = "redis_cluster/watchlist.rs"]
mod watchlist;
use common::process::Process;
use common::redis::Redis;
use common::*;

use std::time::Duration;

use serde_json::{json, Value};

pub(crate) const APP: &str =
    "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenable_client_messages = true\n";

/// A node of the cluster with extra app settings.
pub(crate) async fn node(redis: &Redis, prefix: &str, extra: &str) -> TestServer {
    node_with(redis, prefix, "", extra).await
}

/// A node of the cluster with extra server and app settings.
async fn node_with(redis: &Redis, prefix: &str, server: &str, extra: &str) -> TestServer {
    let toml = format!(
        "adapter = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"{prefix}\"\n{server}\n{APP}{extra}",
        redis.url()
    );
    let s = TestServer::start(&toml).await;
    wait_ready(&s).await;
    s
}

pub(crate) async fn wait_ready(s: &TestServer) {
    for _ in 0..100 {
        if s.raw_http("GET", "/ready", "").await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node never became ready");
}

async fn presence(s: &TestServer, channel: &str, user: Value) -> (WsClient, String, Value) {
    let (mut c, sid) = s.connect("k").await;
    let data = json!({"user_id": user, "user_info": {"name": "n"}}).to_string();
    let auth = channel_auth(&app1(), &sid, channel, Some(&data));
    let ok = c.subscribe(channel, Some(&auth), Some(&data)).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
    (c, sid, decode_data(&ok))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_every_node_exactly_once_with_exclusion() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "t1", "").await, node(&redis, "t1", "").await);
    let (mut on_a, _) = a.connect("k").await;
    let (mut on_b, b_sid) = b.connect("k").await;
    on_a.subscribe("orders", Some(""), None).await;
    on_b.subscribe("orders", Some(""), None).await;
    trigger(&a, &app1(), "orders", "created", "{\"id\":1}").await;
    for c in [&mut on_a, &mut on_b] {
        let m = c.expect_event("created").await;
        assert_eq!(m["data"], "{\"id\":1}");
        assert_eq!(m["channel"], "orders");
    }
    // Exactly once: no second copy arrives.
    on_a.expect_silence(Duration::from_millis(300)).await;
    on_b.expect_silence(Duration::from_millis(300)).await;
    // socket_id exclusion holds across nodes: B's connection is excluded by a trigger on A.
    let body = json!({"name": "second", "channel": "orders", "data": "{}", "socket_id": b_sid});
    trigger_raw(&a, &app1(), &body.to_string()).await;
    on_a.expect_event("second").await;
    on_b.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_and_terminate_cross_nodes() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "t2", "").await, node(&redis, "t2", "").await);
    let (mut on_a, a_sid) = a.connect("k").await;
    let (mut on_b, b_sid) = b.connect("k").await;
    for (c, sid) in [(&mut on_a, &a_sid), (&mut on_b, &b_sid)] {
        let auth = channel_auth(&app1(), sid, "private-chat", None);
        c.subscribe("private-chat", Some(&auth), None).await;
    }
    on_a.send(json!({"event": "client-typing", "channel": "private-chat", "data": {"who": "a"}}))
        .await;
    let m = on_b.expect_event("client-typing").await;
    assert_eq!(m["data"], json!({"who": "a"}));
    on_a.expect_silence(Duration::from_millis(300)).await;

    // terminate_connections through node A closes the user's connection on node B.
    let user_data = "{\"id\":\"42\"}";
    on_b.send(json!({"event": "pusher:signin", "data": {"auth": user_auth(&app1(), &b_sid, user_data), "user_data": user_data}})).await;
    on_b.expect_event("pusher:signin_success").await;
    let (status, _) = terminate_user(&a, &app1(), "42").await;
    assert_eq!(status, 200);
    assert_eq!(
        on_b.closed().await,
        Closed::Code(4009, "Connection terminated by the application".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_cluster_wide() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "t3", "").await, node(&redis, "t3", "").await);
    let (mut u1, _, _) = presence(&a, "presence-room", json!("1")).await;
    let (mut u2, _, data) = presence(&b, "presence-room", json!(2)).await;
    // The subscriber on B sees both members, with their JSON types.
    assert_eq!(data["presence"]["count"], 2, "{data}");
    assert_eq!(data["presence"]["hash"]["1"], json!({"name": "n"}));
    let mut ids: Vec<String> = data["presence"]["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["\"1\"".to_string(), "2".to_string()]);
    let added = u1.expect_event("pusher_internal:member_added").await;
    assert_eq!(decode_data(&added)["user_id"], json!(2));

    // User 3 on both nodes: one member_added, no removal until the last connection leaves.
    let (u3a, _, _) = presence(&a, "presence-room", json!("3")).await;
    let (mut u3b, _, _) = presence(&b, "presence-room", json!("3")).await;
    let added = u1.expect_event("pusher_internal:member_added").await;
    assert_eq!(decode_data(&added)["user_id"], "3");
    u1.expect_silence(Duration::from_millis(300)).await;
    drop(u3a);
    u1.expect_silence(Duration::from_millis(500)).await;
    u3b.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "presence-room"}}))
        .await;
    let removed = u1.expect_event("pusher_internal:member_removed").await;
    assert_eq!(decode_data(&removed)["user_id"], "3");
    let removed = u2.expect_event("pusher_internal:member_removed").await;
    assert_eq!(decode_data(&removed)["user_id"], "3");

    // The users endpoint of either node lists both remaining users.
    let (status, body) = a
        .api(
            &app1(),
            "GET",
            "/apps/1/channels/presence-room/users",
            &[],
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["users"].as_array().map(Vec::len), Some(2), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_cluster_wide() {
    let redis = Redis::start();
    let extra = "max_presence_members_per_channel = 1\nmax_connections = 3\n";
    let (a, b) = (
        node(&redis, "t4", extra).await,
        node(&redis, "t4", extra).await,
    );
    let (_u1, _, _) = presence(&a, "presence-full", json!("1")).await;
    let (mut c, sid) = b.connect("k").await;
    let data = json!({"user_id": "2"}).to_string();
    let auth = channel_auth(&app1(), &sid, "presence-full", Some(&data));
    let err = c.subscribe("presence-full", Some(&auth), Some(&data)).await;
    assert_eq!(err["event"], "pusher:subscription_error", "{err}");
    assert_eq!(err["data"]["type"], "LimitReached");
    assert_eq!(err["data"]["status"], 4004);
    // Two connections so far (u1 on A, c on B); a third is fine, a fourth anywhere is refused.
    let (_third, _) = a.connect("k").await;
    let mut fourth = WsClient::connect(&b.ws_url("k", "?protocol=7")).await;
    let m = fourth.recv().await;
    assert_eq!(m["data"]["code"], 4004, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_cache_see_the_whole_cluster() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "t5", "").await, node(&redis, "t5", "").await);
    let (mut on_b, _) = b.connect("k").await;
    on_b.subscribe("news", Some(""), None).await;
    let (mut on_a, _) = a.connect("k").await;
    on_a.subscribe("news", Some(""), None).await;
    let (_p, _, _) = presence(&b, "presence-x", json!("9")).await;

    let (status, body) = a
        .api(
            &app1(),
            "GET",
            "/apps/1/channels",
            &[("info", "subscription_count")],
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["channels"]["news"]["subscription_count"], 2, "{body}");
    assert_eq!(
        body["channels"]["presence-x"]["subscription_count"], 1,
        "{body}"
    );
    let (_, body) = a
        .api(
            &app1(),
            "GET",
            "/apps/1/channels/presence-x",
            &[("info", "user_count,subscription_count")],
            "",
        )
        .await;
    assert_eq!(
        body,
        json!({"occupied": true, "user_count": 1, "subscription_count": 1})
    );
    let (_, body) = a.api(&app1(), "GET", "/apps/1/connections", &[], "").await;
    assert_eq!(body["connections"], 3, "{body}");

    // A cache channel's last event, triggered on A with nobody listening, reaches B's subscriber.
    trigger(&a, &app1(), "cache-prices", "price", "{\"p\":3}").await;
    let (mut late, _) = b.connect("k").await;
    late.subscribe("cache-prices", Some(""), None).await;
    let m = late.recv().await;
    assert_eq!(m["event"], "price", "{m}");
    assert_eq!(m["data"], "{\"p\":3}");

    // Leaving is seen by the queries too.
    drop(on_b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) = a
        .api(
            &app1(),
            "GET",
            "/apps/1/channels/news",
            &[("info", "subscription_count")],
            "",
        )
        .await;
    assert_eq!(body["subscription_count"], 1, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_separate_clusters_on_one_redis() {
    let redis = Redis::start();
    let (a, other) = (
        node(&redis, "red", "").await,
        node(&redis, "blue", "").await,
    );
    let (mut on_other, _) = other.connect("k").await;
    on_other.subscribe("orders", Some(""), None).await;
    trigger(&a, &app1(), "orders", "created", "{}").await;
    on_other.expect_silence(Duration::from_millis(500)).await;
    let (_, body) = a.api(&app1(), "GET", "/apps/1/channels", &[], "").await;
    assert_eq!(body, json!({"channels": {}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_keeps_local_service_and_recovers() {
    let mut redis = Redis::start();
    let (a, b) = (node(&redis, "t6", "").await, node(&redis, "t6", "").await);
    let (mut on_a, _) = a.connect("k").await;
    on_a.subscribe("live", Some(""), None).await;
    let (mut on_b, _) = b.connect("k").await;
    on_b.subscribe("live", Some(""), None).await;

    redis.stop();
    // Not ready, but still serving its own subscribers.
    let mut not_ready = false;
    for _ in 0..60 {
        if a.raw_http("GET", "/ready", "").await.0 == 503 {
            not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(not_ready, "/ready must report 503 while Redis is down");
    assert_eq!(a.raw_http("GET", "/up", "").await.0, 200);
    trigger(&a, &app1(), "live", "during", "{}").await;
    on_a.expect_event("during").await;
    let (mut newcomer, _) = a.connect("k").await;
    let ok = newcomer.subscribe("live", Some(""), None).await;
    assert_eq!(ok["event"], "pusher_internal:subscription_succeeded");

    // Redis comes back (empty): cross-node delivery and shared state resume without a restart.
    redis.spawn();
    wait_ready(&a).await;
    wait_ready(&b).await;
    let mut delivered = false;
    for i in 0..50 {
        trigger(&a, &app1(), "live", "after", &format!("{{\"n\":{i}}}")).await;
        if on_b
            .try_recv(Duration::from_millis(200))
            .await
            .is_some_and(|m| m["event"] == "after")
        {
            delivered = true;
            break;
        }
    }
    assert!(
        delivered,
        "cross-node delivery must resume after Redis returns"
    );
    // The counts are re-asserted from the nodes' local state.
    let mut counted = false;
    for _ in 0..50 {
        let (_, body) = b
            .api(
                &app1(),
                "GET",
                "/apps/1/channels/live",
                &[("info", "subscription_count")],
                "",
            )
            .await;
        if body["subscription_count"] == 3 {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        counted,
        "subscription counts must be restored after Redis restarts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_no_ghosts() {
    let redis = Redis::start();
    let mut rx = common::receiver::Receiver::start(vec![]).await;
    let hook = format!(
        "[[apps.webhooks]]\nurl = \"{}\"\nevent_types = [\"member_removed\"]\n",
        rx.url()
    );
    let a = node_with(&redis, "t7", "webhook_delay_ms = 100", &hook).await;
    // B as a separate process, so that it can be killed with SIGKILL.
    let mut b = Process::start(
        APP,
        &[
            "--adapter",
            "redis",
            "--redis-url",
            &redis.url(),
            "--redis-prefix",
            "t7",
        ],
    )
    .await;
    let b_addr = b.addr;
    let mut ready = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(b_addr).is_ok()
            && http_request(b_addr, "GET", "/ready", "").await.0 == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "node B never became ready");

    let (mut observer, _, _) = presence(&a, "presence-team", json!("alive")).await;
    let (mut ghost, sid) = b.connect("k").await;
    let data = json!({"user_id": "ghost"}).to_string();
    let auth = channel_auth(&app1(), &sid, "presence-team", Some(&data));
    let ok = ghost
        .subscribe("presence-team", Some(&auth), Some(&data))
        .await;
    assert_eq!(decode_data(&ok)["presence"]["count"], 2, "{ok}");
    let added = observer.expect_event("pusher_internal:member_added").await;
    assert_eq!(decode_data(&added)["user_id"], "ghost");
    let (_, body) = a.api(&app1(), "GET", "/apps/1/connections", &[], "").await;
    assert_eq!(body["connections"], 2, "{body}");

    b.kill();
    // Within the liveness window (10 s TTL + 3 s ticks) the ghost is removed and announced.
    let removed = observer
        .try_recv(Duration::from_secs(25))
        .await
        .expect("member_removed for the dead node's member");
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    assert_eq!(decode_data(&removed)["user_id"], "ghost");
    let (_, body) = a
        .api(
            &app1(),
            "GET",
            "/apps/1/channels/presence-team/users",
            &[],
            "",
        )
        .await;
    assert_eq!(body, json!({"users": [{"id": "alive"}]}));
    // The surviving node that cleaned up reports it to the app once.
    let hook = rx.next().await;
    assert_eq!(
        hook.events()[0],
        json!({"name": "member_removed", "channel": "presence-team", "user_id": "ghost"})
    );
    let (_, body) = a.api(&app1(), "GET", "/apps/1/connections", &[], "").await;
    assert_eq!(body["connections"], 1, "{body}");
    let (_, body) = a
        .api(
            &app1(),
            "GET",
            "/apps/1/channels/presence-team",
            &[("info", "subscription_count")],
            "",
        )
        .await;
    assert_eq!(body["subscription_count"], 1, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_departures_during_an_outage_are_settled_after_recovery() {
    let mut redis = Redis::start();
    let (a, b) = (node(&redis, "t8", "").await, node(&redis, "t8", "").await);
    let (mut observer, _, _) = presence(&a, "presence-ops", json!("watcher")).await;
    let (leaver, _, _) = presence(&b, "presence-ops", json!("leaver")).await;
    observer.expect_event("pusher_internal:member_added").await;

    redis.stop();
    for _ in 0..60 {
        if b.raw_http("GET", "/ready", "").await.0 == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(leaver); // leaves while B cannot tell Redis
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.spawn(); // empty Redis: both nodes re-assert what they hold

    // A's member is told once Redis is back and B has settled its state.
    let m = observer
        .try_recv(Duration::from_secs(15))
        .await
        .expect("member_removed after recovery");
    assert_eq!(m["event"], "pusher_internal:member_removed", "{m}");
    assert_eq!(decode_data(&m)["user_id"], "leaver");
    let mut users = Value::Null;
    for _ in 0..50 {
        users = a
            .api(
                &app1(),
                "GET",
                "/apps/1/channels/presence-ops/users",
                &[],
                "",
            )
            .await
            .1;
        if users == json!({"users": [{"id": "watcher"}]}) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(users, json!({"users": [{"id": "watcher"}]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_sent_once_for_the_whole_cluster() {
    let redis = Redis::start();
    let mut rx = common::receiver::Receiver::start(vec![]).await;
    let hook = format!(
        "[[apps.webhooks]]\nurl = \"{}\"\nevent_types = [\"channel_occupied\", \"channel_vacated\", \"member_added\", \"member_removed\"]\n",
        rx.url()
    );
    let server = "webhook_delay_ms = 200";
    let (a, b) = (
        node_with(&redis, "t9", server, &hook).await,
        node_with(&redis, "t9", server, &hook).await,
    );
    // The same user on both nodes, one after the other.
    let (ua, _, _) = presence(&a, "presence-desk", json!("5")).await;
    let (ub, _, _) = presence(&b, "presence-desk", json!("5")).await;
    assert_eq!(
        rx.next_sorted(2, "name").await,
        vec!["channel_occupied", "member_added"]
    );
    rx.nothing(Duration::from_millis(600)).await;
    drop(ua);
    rx.nothing(Duration::from_millis(600)).await;
    drop(ub);
    assert_eq!(
        rx.next_sorted(2, "name").await,
        vec!["channel_vacated", "member_removed"]
    );
    rx.nothing(Duration::from_millis(600)).await;
}

/// The live subscription count is the cluster's, and reaches subscribers on every node
/// (docs/protocol.md §10.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_counts_are_cluster_wide() {
    let redis = Redis::start();
    let extra = "enable_subscription_count = true\n";
    let (a, b) = (
        node(&redis, "t-count", extra).await,
        node(&redis, "t-count", extra).await,
    );
    let count = |m: &Value| {
        assert_eq!(m["event"], "pusher_internal:subscription_count", "{m}");
        decode_data(m)["subscription_count"]
            .as_u64()
            .expect("count")
    };
    let (mut on_a, _) = a.connect("k").await;
    on_a.subscribe("news", Some(""), None).await;
    assert_eq!(count(&on_a.recv().await), 1);
    let (mut on_b, _) = b.connect("k").await;
    on_b.subscribe("news", Some(""), None).await;
    assert_eq!(count(&on_b.recv().await), 2);
    assert_eq!(
        count(&on_a.recv().await),
        2,
        "node A hears of node B's subscriber"
    );
    drop(on_b);
    assert_eq!(count(&on_a.recv().await), 1);
    on_a.expect_silence(Duration::from_millis(300)).await;
}
