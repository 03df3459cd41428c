//! The Redis adapter with Sentinel (`redis_mode = "sentinel"`): a real master, replica and
//! three sentinels. Two nodes find the master through the sentinels, follow the replica when
//! the master is killed and the sentinels promote it, and after that lose nothing published;
//! a `kill -9`ed node's member is still removed on the new master. A master name the
//! sentinels do not monitor stops the node; sentinels that do not answer do not.

use crate::common::process::{expect_member_removed, run_to_exit, wait_ready, Process};
use crate::common::redis::free_port;
use crate::common::sentinel::{SentinelSet, MASTER};
use crate::common::*;

use std::time::Duration;

use serde_json::json;

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

fn settings(sentinels: &[String], master: &str) -> String {
    let list: Vec<String> = sentinels.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "adapter = \"redis\"\nredis_mode = \"sentinel\"\nredis_sentinels = [{}]\nredis_sentinel_master = \"{master}\"\nredis_prefix = \"s1\"\n{APP}",
        list.join(", ")
    )
}

async fn member(c: &mut WsClient, sid: &str, user: &str) -> serde_json::Value {
    let data = json!({"user_id": user}).to_string();
    let auth = channel_auth(&app1(), sid, "presence-team", Some(&data));
    c.subscribe("presence-team", Some(&auth), Some(&data)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_follow_a_failover_and_lose_nothing_after_it() {
    let mut set = SentinelSet::start();
    let toml = settings(&set.urls(), MASTER);
    let a = TestServer::start(&toml).await;
    let mut b = Process::start(&toml, &[]).await;
    assert!(wait_ready(a.addr, Duration::from_secs(10)).await, "A ready");
    assert!(wait_ready(b.addr, Duration::from_secs(10)).await, "B ready");

    let (mut on_a, _) = a.connect("k").await;
    let (mut on_b, _) = b.connect("k").await;
    on_a.subscribe("orders", Some(""), None).await;
    on_b.subscribe("orders", Some(""), None).await;
    trigger(&a, &app1(), "orders", "before", "{}").await;
    on_a.expect_event("before").await;
    on_b.expect_event("before").await;
    let (mut observer, sid) = a.connect("k").await;
    member(&mut observer, &sid, "alive").await;
    let (mut ghost, sid) = b.connect("k").await;
    let ok = member(&mut ghost, &sid, "ghost").await;
    assert_eq!(decode_data(&ok)["presence"]["count"], 2, "{ok}");
    observer.expect_event("pusher_internal:member_added").await;

    set.fail_over();
    // Both nodes find the new master by themselves (a liveness tick asks the sentinels).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        wait_ready(a.addr, Duration::from_secs(20)).await,
        "A follows the new master"
    );
    assert!(
        wait_ready(b.addr, Duration::from_secs(20)).await,
        "B follows the new master"
    );
    // Both nodes' bus subscriptions are on the new master once a cross-node event arrives;
    // from then on every event published arrives exactly once, in order.
    let mut crossed = false;
    for i in 0..100 {
        trigger(&a, &app1(), "orders", "probe", &i.to_string()).await;
        if let Some(m) = on_b.try_recv(Duration::from_millis(200)).await {
            assert_eq!(m["event"], "probe", "{m}");
            crossed = true;
            break;
        }
    }
    assert!(crossed, "no event crossed from A to B after the failover");
    // Drain what A itself received meanwhile.
    while on_a.try_recv(Duration::from_millis(300)).await.is_some() {}
    while on_b.try_recv(Duration::from_millis(300)).await.is_some() {}
    for i in 0..20 {
        trigger(&a, &app1(), "orders", "after", &i.to_string()).await;
    }
    for c in [&mut on_a, &mut on_b] {
        for i in 0..20 {
            let m = c.expect_event("after").await;
            assert_eq!(m["data"], i.to_string(), "in order, none lost");
        }
    }
    let body = json!({"name": "from-b", "channel": "orders", "data": "{}"});
    assert_eq!(
        b.api(&app1(), "POST", "/apps/1/events", &body.to_string())
            .await
            .0,
        200
    );
    for c in [&mut on_a, &mut on_b] {
        c.expect_event("from-b").await;
        c.expect_silence(Duration::from_millis(300)).await;
    }
    // The presence state is on the new master: both members, and a killed node's member is
    // still removed and announced.
    let (_, users) = a
        .api(
            &app1(),
            "GET",
            "/apps/1/channels/presence-team/users",
            &[],
            "",
        )
        .await;
    assert_eq!(users["users"].as_array().map(Vec::len), Some(2), "{users}");
    b.kill();
    expect_member_removed(&mut observer, "ghost").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_master_name_stops_the_node_and_silent_sentinels_do_not() {
    let set = SentinelSet::start();
    let (code, err) = run_to_exit(&settings(&set.urls(), "nope"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("redis_sentinel_master") && err.contains("\"nope\""),
        "{err}"
    );

    let nowhere = vec![format!("redis://127.0.0.1:{}", free_port())];
    let s = TestServer::start(&settings(&nowhere, MASTER)).await;
    let (mut c, _) = s.connect("k").await;
    c.subscribe("orders", Some(""), None).await;
    trigger(&s, &app1(), "orders", "local", "{}").await;
    c.expect_event("local").await;
    assert_eq!(s.raw_http("GET", "/ready", "").await.0, 503);
}
