//! Watchlist events over two nodes (docs/protocol.md §10.1): online means signed in anywhere
//! in the cluster; each transition reaches each watcher once, a killed node's users included.

use std::time::Duration;

use serde_json::{json, Value};

use super::common::process::{wait_ready, Process};
use super::common::redis::Redis;
use super::common::*;
use super::{node, APP};

const WATCH: &str = "enable_watchlist_events = true\n";
const QUIET: Duration = Duration::from_millis(500);

fn watch_events(m: &Value) -> Value {
    assert_eq!(m["event"], "pusher_internal:watchlist_events", "{m}");
    assert!(m.get("channel").is_none(), "{m}");
    decode_data(m)["events"].clone()
}

async fn sign_in(c: &mut WsClient, sid: &str, id: &str, watchlist: Option<Value>) {
    let mut user = json!({ "id": id });
    if let Some(w) = watchlist {
        user["watchlist"] = w;
    }
    c.sign_in(&app1(), sid, &user.to_string()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_means_anywhere_and_each_transition_arrives_once() {
    let redis = Redis::start();
    let (a, b) = (
        node(&redis, "w1", WATCH).await,
        node(&redis, "w1", WATCH).await,
    );
    let (mut two, sid) = b.connect("k").await;
    sign_in(&mut two, &sid, "2", None).await;
    let (mut watcher, sid) = a.connect("k").await;
    sign_in(&mut watcher, &sid, "1", Some(json!([2, "3"]))).await;
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "online", "user_ids": ["2"]}, {"name": "offline", "user_ids": ["3"]}]),
        "user 2 is signed in on the other node"
    );
    // User 3 on both nodes: one online, and offline only after the last connection.
    let (mut three_b, sid) = b.connect("k").await;
    sign_in(&mut three_b, &sid, "3", None).await;
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "online", "user_ids": ["3"]}])
    );
    let (mut three_a, sid) = a.connect("k").await;
    sign_in(&mut three_a, &sid, "3", None).await;
    watcher.expect_silence(QUIET).await;
    drop(three_b);
    watcher.expect_silence(QUIET).await;
    drop(three_a);
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "offline", "user_ids": ["3"]}])
    );
    // A watcher on the same node as the user, and one on the other, both hear it once.
    let (mut near, sid) = b.connect("k").await;
    sign_in(&mut near, &sid, "9", Some(json!(["2"]))).await;
    assert_eq!(
        watch_events(&near.recv().await),
        json!([{"name": "online", "user_ids": ["2"]}])
    );
    let (status, _) = terminate_user_at(&a, "2").await;
    assert_eq!(status, 200);
    for w in [&mut watcher, &mut near] {
        assert_eq!(
            watch_events(&w.recv().await),
            json!([{"name": "offline", "user_ids": ["2"]}])
        );
        w.expect_silence(QUIET).await;
    }
}

async fn terminate_user_at(s: &TestServer, user: &str) -> (u16, Value) {
    terminate_user(s, &app1(), user).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_users_go_offline() {
    let redis = Redis::start();
    let a = node(&redis, "w2", WATCH).await;
    let config = format!("{APP}{WATCH}");
    let mut b = Process::start(
        &config,
        &[
            "--adapter",
            "redis",
            "--redis-url",
            &redis.url(),
            "--redis-prefix",
            "w2",
        ],
    )
    .await;
    assert!(
        wait_ready(b.addr, Duration::from_secs(5)).await,
        "node B never became ready"
    );
    let (mut ghost, sid) = b.connect("k").await;
    sign_in(&mut ghost, &sid, "ghost", None).await;
    let (mut watcher, sid) = a.connect("k").await;
    sign_in(&mut watcher, &sid, "1", Some(json!(["ghost"]))).await;
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "online", "user_ids": ["ghost"]}])
    );
    b.kill();
    // Within the liveness window (10 s TTL + 3 s ticks).
    let m = watcher
        .try_recv(Duration::from_secs(25))
        .await
        .expect("offline for the dead node's user");
    assert_eq!(
        watch_events(&m),
        json!([{"name": "offline", "user_ids": ["ghost"]}])
    );
    watcher.expect_silence(QUIET).await;
    // And a later sign-in finds the user offline, then online again.
    let (mut back, sid) = a.connect("k").await;
    sign_in(&mut back, &sid, "ghost", None).await;
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "online", "user_ids": ["ghost"]}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_during_a_redis_restart_are_re_asserted() {
    let mut redis = Redis::start();
    let (a, b) = (
        node(&redis, "w3", WATCH).await,
        node(&redis, "w3", WATCH).await,
    );
    let (mut watcher, sid) = a.connect("k").await;
    sign_in(&mut watcher, &sid, "1", Some(json!(["2", "3"]))).await;
    watcher.recv().await;
    let (mut two, sid) = b.connect("k").await;
    sign_in(&mut two, &sid, "2", None).await;
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "online", "user_ids": ["2"]}])
    );
    // Redis goes away; user 2 leaves and user 3 arrives meanwhile; it comes back empty.
    redis.stop();
    drop(two);
    let (mut three, sid) = b.connect("k").await;
    sign_in(&mut three, &sid, "3", None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.spawn();
    // Once the nodes re-assert their state, a new watcher sees the truth.
    let mut seen = Value::Null;
    for _ in 0..100 {
        let (mut probe, sid) = a.connect("k").await;
        sign_in(&mut probe, &sid, "p", Some(json!(["2", "3"]))).await;
        seen = watch_events(&probe.recv().await);
        if seen
            == json!([{"name": "online", "user_ids": ["3"]}, {"name": "offline", "user_ids": ["2"]}])
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("statuses never re-asserted: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_sign_in_storm_across_nodes_the_statuses_come_first_and_stay_true() {
    let redis = Redis::start();
    let extra = "enable_watchlist_events = true\n";
    let (a, b) = (
        node(&redis, "ws", extra).await,
        node(&redis, "ws", extra).await,
    );
    let n = 60;
    let frames = crate::common::watch_storm::sign_in_storm(&[&a, &b], n).await;
    for (who, f) in frames.iter().enumerate() {
        crate::common::watch_storm::assert_statuses_first_and_all_online(f, n, who);
    }
}
