//! The Redis adapter on Redis Cluster (`redis_mode = "cluster"`): a real three-master cluster,
//! two apps whose keys (and bus channels) live on different masters, and two nodes, one of
//! them a separate process that is killed with SIGKILL. Events reach every node exactly once
//! with `socket_id` exclusion, counts and presence are cluster-wide, and the killed node's
//! member is removed and announced. Seeds that do not answer leave the node serving locally,
//! named in its log without their password.

use crate::common::process::Process;
use crate::common::rcluster::RedisCluster;
use crate::common::redis::free_port;
use crate::common::*;

use std::time::Duration;

use serde_json::json;

fn settings(seeds: &[String], apps: &[&TestApp]) -> String {
    settings_with(seeds, apps, "")
}

/// `per_app` is added to every `[[apps]]` entry (webhooks, recovery tables).
fn settings_with(seeds: &[String], apps: &[&TestApp], per_app: &str) -> String {
    let list: Vec<String> = seeds.iter().map(|u| format!("\"{u}\"")).collect();
    let mut toml = format!(
        "adapter = \"redis\"\nredis_mode = \"cluster\"\nredis_cluster_nodes = [{}]\nredis_prefix = \"c1\"\n",
        list.join(", ")
    );
    for app in apps {
        toml.push_str(&format!(
            "[[apps]]\nid = \"{}\"\nkey = \"{}\"\nsecret = \"{}\"\nenable_client_messages = true\n{per_app}",
            app.id, app.key, app.secret
        ));
    }
    toml
}

fn app(id: &str) -> TestApp {
    TestApp::new(id, &format!("k{id}"), &format!("s{id}"))
}

/// Two apps whose hash tags `{app:ID}` belong to different masters.
fn apps_on_two_masters(cluster: &RedisCluster) -> (TestApp, TestApp) {
    let first = cluster.master_of("{app:1}");
    let other = (2..100)
        .map(|i| i.to_string())
        .find(|id| cluster.master_of(&format!("{{app:{id}}}")) != first)
        .expect("an app id on another master");
    (app("1"), app(&other))
}

async fn ready(addr: std::net::SocketAddr, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if http_request(addr, "GET", "/ready", "").await.0 == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Runs the binary with `toml` for `run`, then kills it: what it logged meanwhile (standard
/// output and error). That it was still running is asserted: unreachable seeds do not stop it.
fn first_seconds_of_log(toml: &str, run: Duration) -> String {
    use std::io::Read;
    let (_dir, mut child) =
        crate::common::process::spawn_with_config(toml, std::process::Stdio::piped());
    std::thread::sleep(run);
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the node stopped"
    );
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    for out in [
        child.stdout.take().map(|o| Box::new(o) as Box<dyn Read>),
        child.stderr.take().map(|e| Box::new(e) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut out = out;
        let _ = out.read_to_string(&mut log);
    }
    log
}

async fn member(c: &mut WsClient, app: &TestApp, sid: &str, user: &str) -> serde_json::Value {
    let data = json!({"user_id": user}).to_string();
    let auth = channel_auth(app, sid, "presence-team", Some(&data));
    c.subscribe("presence-team", Some(&auth), Some(&data)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_a_three_master_cluster_are_one_server() {
    let cluster = RedisCluster::start();
    let (x, y) = apps_on_two_masters(&cluster);
    let toml = settings(&cluster.urls(), &[&x, &y]);
    let a = TestServer::start(&toml).await;
    let mut b = Process::start(&toml, &[]).await;
    assert!(ready(a.addr, Duration::from_secs(15)).await, "A ready");
    assert!(ready(b.addr, Duration::from_secs(15)).await, "B ready");

    // Kept open: the first app's count is checked again after B dies.
    let mut kept = Vec::new();
    for app in [&x, &y] {
        let (mut on_a, _) = a.connect(&app.key).await;
        let (mut on_b, b_sid) = b.connect(&app.key).await;
        on_a.subscribe("orders", Some(""), None).await;
        on_b.subscribe("orders", Some(""), None).await;
        trigger(&a, app, "orders", "created", "{\"id\":1}").await;
        for c in [&mut on_a, &mut on_b] {
            let m = c.expect_event("created").await;
            assert_eq!(m["data"], "{\"id\":1}", "app {}", app.id);
        }
        // Exclusion across nodes: B's connection is excluded by a trigger on A.
        let body = json!({"name": "second", "channel": "orders", "data": "{}", "socket_id": b_sid});
        trigger_raw(&a, app, &body.to_string()).await;
        on_a.expect_event("second").await;
        // From B (the other process) to A.
        let body = json!({"name": "from-b", "channel": "orders", "data": "{}"});
        let path = format!("/apps/{}/events", app.id);
        assert_eq!(b.api(app, "POST", &path, &body.to_string()).await.0, 200);
        for c in [&mut on_a, &mut on_b] {
            c.expect_event("from-b").await;
            // Exactly once: no second copy of anything.
            c.expect_silence(Duration::from_millis(300)).await;
        }
        let (_, body) = a
            .api(
                app,
                "GET",
                &format!("/apps/{}/channels/orders", app.id),
                &[("info", "subscription_count")],
                "",
            )
            .await;
        assert_eq!(body["subscription_count"], 2, "app {}: {body}", app.id);
        kept.push((on_a, on_b));
    }
    // The two apps' keys really are on two different masters.
    let (mx, my) = (
        cluster.master_of("{app:1}"),
        cluster.master_of(&format!("{{app:{}}}", y.id)),
    );
    assert_ne!(mx, my);
    assert!(cluster.keys_on(mx) > 0 && cluster.keys_on(my) > 0);

    // Presence over the cluster, on the second app; then B dies without warning.
    let (mut observer, sid) = a.connect(&y.key).await;
    member(&mut observer, &y, &sid, "alive").await;
    let (mut ghost, sid) = b.connect(&y.key).await;
    let ok = member(&mut ghost, &y, &sid, "ghost").await;
    assert_eq!(decode_data(&ok)["presence"]["count"], 2, "{ok}");
    observer.expect_event("pusher_internal:member_added").await;
    let users_path = format!("/apps/{}/channels/presence-team/users", y.id);
    let (_, users) = a.api(&y, "GET", &users_path, &[], "").await;
    assert_eq!(users["users"].as_array().map(Vec::len), Some(2), "{users}");
    let (_, conns) = a
        .api(&y, "GET", &format!("/apps/{}/connections", y.id), &[], "")
        .await;
    assert_eq!(conns["connections"], 4, "{conns}");

    b.kill();
    // Within the liveness TTL (10 s) and a heartbeat or two.
    let removed = loop {
        let m = observer
            .try_recv(Duration::from_secs(25))
            .await
            .expect("member_removed for the killed node's member");
        if m["event"] != "pusher_internal:member_added" {
            break m;
        }
    };
    assert_eq!(
        removed["event"], "pusher_internal:member_removed",
        "{removed}"
    );
    assert_eq!(decode_data(&removed)["user_id"], "ghost");
    let (_, users) = a.api(&y, "GET", &users_path, &[], "").await;
    assert_eq!(users["users"], json!([{"id": "alive"}]), "{users}");
    let (_, body) = a
        .api(
            &x,
            "GET",
            &format!("/apps/{}/channels/orders", x.id),
            &[("info", "subscription_count")],
            "",
        )
        .await;
    // B's subscriber is gone from the count, A's is still there.
    assert_eq!(body["subscription_count"], 1, "{body}");
    drop(kept);
}

/// Webhooks are sent once for the whole cluster, and a recorded channel's events are numbered
/// once, in one order, on the master holding the app, whichever node publishes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_once_and_recorded_history_on_a_cluster() {
    let cluster = RedisCluster::start();
    let (x, y) = apps_on_two_masters(&cluster);
    let mut rx = crate::common::receiver::Receiver::start(vec![]).await;
    let per_app = format!(
        "[[apps.webhooks]]\nurl = \"{}\"\nevent_types = [\"channel_occupied\", \"channel_vacated\", \"member_added\", \"member_removed\"]\n[[apps.recovery]]\nchannels = [\"private-provider.*\"]\n",
        rx.url()
    );
    let toml = settings_with(&cluster.urls(), &[&x, &y], &per_app);
    let toml = format!("webhook_delay_ms = 200\n{toml}");
    let a = TestServer::start(&toml).await;
    let b = TestServer::start(&toml).await;
    assert!(ready(a.addr, Duration::from_secs(15)).await, "A ready");
    assert!(ready(b.addr, Duration::from_secs(15)).await, "B ready");

    // The same user on both nodes, in the app on the second master.
    let (mut ua, sid) = a.connect(&y.key).await;
    member(&mut ua, &y, &sid, "5").await;
    let (mut ub, sid) = b.connect(&y.key).await;
    member(&mut ub, &y, &sid, "5").await;
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

    // Recorded events published through both nodes reach a subscriber on B once, in order,
    // and the history B reads is the cluster's.
    let channel = "private-provider.42";
    let (mut on_b, sid) = b.connect(&x.key).await;
    let auth = channel_auth(&x, &sid, channel, None);
    on_b.subscribe(channel, Some(&auth), None).await;
    for n in 1..=4 {
        let via = if n % 2 == 1 { &a } else { &b };
        trigger(via, &x, channel, "booked", &format!("{{\"n\":{n}}}")).await;
    }
    for n in 1..=4 {
        let m = on_b.expect_event("booked").await;
        assert_eq!(decode_data(&m)["n"], n, "{m}");
    }
    on_b.expect_silence(Duration::from_millis(300)).await;
    let path = format!("/apps/{}/channels/{channel}/history", x.id);
    let (status, page) = b.api(&x, "GET", &path, &[("limit", "10")], "").await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 4, "{page}");
    let offsets: Vec<u64> = items.iter().filter_map(|i| i["offset"].as_u64()).collect();
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "{page}");
    assert_eq!(page["complete"], true, "{page}");
}

/// An app's slot moves to another master under running nodes (a resharding): its keys go
/// with it, the nodes follow, and events published after the move cross nodes exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_follow_a_resharding() {
    let cluster = RedisCluster::start();
    let x = app("1");
    let toml = settings(&cluster.urls(), &[&x]);
    let a = TestServer::start(&toml).await;
    let b = TestServer::start(&toml).await;
    assert!(ready(a.addr, Duration::from_secs(15)).await, "A ready");
    assert!(ready(b.addr, Duration::from_secs(15)).await, "B ready");
    let (mut on_a, _) = a.connect(&x.key).await;
    let (mut on_b, _) = b.connect(&x.key).await;
    on_a.subscribe("orders", Some(""), None).await;
    on_b.subscribe("orders", Some(""), None).await;
    trigger(&a, &x, "orders", "before", "{}").await;
    on_a.expect_event("before").await;
    on_b.expect_event("before").await;

    let tag = "{app:1}";
    let from = cluster.master_of(tag);
    let to = *cluster
        .ports
        .iter()
        .find(|p| **p != from)
        .expect("another master");
    cluster.move_slot_of(tag, to);
    assert!(cluster.keys_on(to) > 0, "the app's keys moved");

    // Once an event crosses again, every later one arrives exactly once and in order.
    let mut crossed = false;
    for i in 0..60 {
        trigger(&a, &x, "orders", "probe", &i.to_string()).await;
        if let Some(m) = on_b.try_recv(Duration::from_millis(250)).await {
            assert_eq!(m["event"], "probe", "{m}");
            crossed = true;
            break;
        }
    }
    assert!(crossed, "no event crossed from A to B after the resharding");
    while on_a.try_recv(Duration::from_millis(300)).await.is_some() {}
    while on_b.try_recv(Duration::from_millis(300)).await.is_some() {}
    for i in 0..10 {
        trigger(&b, &x, "orders", "after", &i.to_string()).await;
    }
    for c in [&mut on_a, &mut on_b] {
        for i in 0..10 {
            let m = c.expect_event("after").await;
            assert_eq!(m["data"], i.to_string(), "in order, none lost");
        }
        c.expect_silence(Duration::from_millis(300)).await;
    }
    let (_, body) = a
        .api(
            &x,
            "GET",
            "/apps/1/channels/orders",
            &[("info", "subscription_count")],
            "",
        )
        .await;
    assert_eq!(body["subscription_count"], 2, "{body}");
}

/// The master holding an app is killed and its replica promoted under running nodes: they
/// reconnect, subscribe the bus on the new master, and events published afterwards cross
/// nodes exactly once and in order; presence is still the cluster's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_follow_a_master_failover() {
    let mut cluster = RedisCluster::start_with_replicas(1);
    let x = app("1");
    let toml = settings(&cluster.urls(), &[&x]);
    let a = TestServer::start(&toml).await;
    let b = TestServer::start(&toml).await;
    assert!(ready(a.addr, Duration::from_secs(15)).await, "A ready");
    assert!(ready(b.addr, Duration::from_secs(15)).await, "B ready");
    let (mut on_a, _) = a.connect(&x.key).await;
    let (mut on_b, _) = b.connect(&x.key).await;
    on_a.subscribe("orders", Some(""), None).await;
    on_b.subscribe("orders", Some(""), None).await;
    let (mut observer, sid) = a.connect(&x.key).await;
    member(&mut observer, &x, &sid, "alive").await;
    let (mut other, sid) = b.connect(&x.key).await;
    member(&mut other, &x, &sid, "other").await;
    observer.expect_event("pusher_internal:member_added").await;
    trigger(&a, &x, "orders", "before", "{}").await;
    on_a.expect_event("before").await;
    on_b.expect_event("before").await;

    cluster.fail_over_master_of("{app:1}");
    // Each node subscribes again on the new master at its own next tick: only once an event
    // has crossed each way are both subscriptions there (what is published before that is
    // the outage's, documented as lost for clients without recovery).
    // (The other node's client also gets its own node's probes: only the named one counts.)
    for (from, to, way) in [
        (&a, &mut on_b, "probe-a-to-b"),
        (&b, &mut on_a, "probe-b-to-a"),
    ] {
        let mut crossed = false;
        'probing: for i in 0..120 {
            trigger(from, &x, "orders", way, &i.to_string()).await;
            while let Some(m) = to.try_recv(Duration::from_millis(250)).await {
                if m["event"] == way {
                    crossed = true;
                    break 'probing;
                }
            }
        }
        assert!(
            crossed,
            "no event crossed from {way} after the failover; subscribers per node {:?}, masters {:?} -> {}",
            cluster.shard_subscribers("c1:{app:1}:bus"),
            cluster.ports,
            cluster.master_of("{app:1}")
        );
    }
    while on_a.try_recv(Duration::from_millis(300)).await.is_some() {}
    while on_b.try_recv(Duration::from_millis(300)).await.is_some() {}
    for i in 0..10 {
        trigger(&b, &x, "orders", "after", &i.to_string()).await;
    }
    for c in [&mut on_a, &mut on_b] {
        for i in 0..10 {
            let m = c.expect_event("after").await;
            assert_eq!(m["data"], i.to_string(), "in order, none lost");
        }
        c.expect_silence(Duration::from_millis(300)).await;
    }
    // The members are on the new master (re-asserted if the replica lagged).
    let mut users = serde_json::Value::Null;
    for _ in 0..50 {
        users = a
            .api(&x, "GET", "/apps/1/channels/presence-team/users", &[], "")
            .await
            .1;
        if users["users"].as_array().map(Vec::len) == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(users["users"].as_array().map(Vec::len), Some(2), "{users}");
}

/// Watchlist events (published by the user scripts on the app's sharded channel) reach a
/// watcher on the other node, each transition once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchlist_events_cross_nodes_on_a_cluster() {
    let cluster = RedisCluster::start();
    let (_, y) = apps_on_two_masters(&cluster);
    let toml = settings_with(&cluster.urls(), &[&y], "enable_watchlist_events = true\n");
    let a = TestServer::start(&toml).await;
    let b = TestServer::start(&toml).await;
    assert!(ready(a.addr, Duration::from_secs(15)).await, "A ready");
    assert!(ready(b.addr, Duration::from_secs(15)).await, "B ready");
    let events = |m: &serde_json::Value| {
        assert_eq!(m["event"], "pusher_internal:watchlist_events", "{m}");
        decode_data(m)["events"].clone()
    };
    let (mut two, sid) = b.connect(&y.key).await;
    two.sign_in(&y, &sid, r#"{"id":"2"}"#).await;
    let (mut watcher, sid) = a.connect(&y.key).await;
    let me = json!({"id": "1", "watchlist": ["2", "3"]}).to_string();
    watcher.sign_in(&y, &sid, &me).await;
    assert_eq!(
        events(&watcher.recv().await),
        json!([{"name": "online", "user_ids": ["2"]}, {"name": "offline", "user_ids": ["3"]}])
    );
    let (mut three, sid) = b.connect(&y.key).await;
    three.sign_in(&y, &sid, r#"{"id":"3"}"#).await;
    assert_eq!(
        events(&watcher.recv().await),
        json!([{"name": "online", "user_ids": ["3"]}])
    );
    drop(three);
    assert_eq!(
        events(&watcher.recv().await),
        json!([{"name": "offline", "user_ids": ["3"]}])
    );
    watcher.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_seeds_leave_the_node_serving_locally_and_are_named() {
    let port = free_port();
    let seeds = vec![format!("redis://clarion:Secret_1@127.0.0.1:{port}")];
    let x = app("1");
    let log = first_seconds_of_log(&settings(&seeds, &[&x]), Duration::from_secs(4));
    assert!(
        log.contains("redis is not reachable; serving locally until it is")
            && log.contains("redis_cluster_nodes")
            && log.contains(&format!("127.0.0.1:{port}")),
        "{log}"
    );
    assert!(!log.contains("Secret_1"), "{log}");

    let s = TestServer::start(&settings(&seeds, &[&x])).await;
    let (mut c, _) = s.connect(&x.key).await;
    c.subscribe("orders", Some(""), None).await;
    trigger(&s, &x, "orders", "local", "{}").await;
    c.expect_event("local").await;
    assert_eq!(s.raw_http("GET", "/ready", "").await.0, 503);
}

/// Interest-based fan-out on a cluster: a node holds a channel's sharded subscription while it
/// has subscribers there and only then; leaving and joining again on purpose is not taken for
/// a lost subscription (which would close the node's opted-in subscribers with 4200).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_holds_a_channels_subscription_only_while_it_has_subscribers() {
    let cluster = RedisCluster::start();
    let x = app("1");
    let recorded = "[[apps.recovery]]\nchannels = [\"private-provider.*\"]\n";
    let toml = settings_with(&cluster.urls(), &[&x], recorded);
    let a = TestServer::start(&toml).await;
    let b = TestServer::start(&toml).await;
    assert!(ready(a.addr, Duration::from_secs(15)).await, "A ready");
    assert!(ready(b.addr, Duration::from_secs(15)).await, "B ready");
    let holders = |channel: &str| -> i64 {
        let bus = format!("c1:{{app:1}}:ch:{channel}");
        cluster.shard_subscribers(&bus).iter().map(|(_, n)| n).sum()
    };
    // An opted-in subscriber on B, on a recorded channel.
    let provider = "private-provider.7";
    let (mut opted, sid) = b.connect(&x.key).await;
    let data = json!({"channel": provider, "auth": channel_auth(&x, &sid, provider, None), "clarion": {"v": 1}});
    opted
        .send(json!({"event": "pusher:subscribe", "data": data}))
        .await;
    opted
        .expect_event("pusher_internal:subscription_succeeded")
        .await;

    let (mut on_a, _) = a.connect(&x.key).await;
    on_a.subscribe("watched", Some(""), None).await;
    assert_eq!(holders("watched"), 1);
    let (mut on_b, _) = b.connect(&x.key).await;
    for round in 0..3 {
        on_b.subscribe("watched", Some(""), None).await;
        assert_eq!(holders("watched"), 2, "round {round}");
        trigger(&a, &x, "watched", "seen", &round.to_string()).await;
        assert_eq!(on_b.expect_event("seen").await["data"], round.to_string());
        on_a.expect_event("seen").await;
        on_b.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "watched"}}))
            .await;
        let mut left = false;
        for _ in 0..100 {
            if holders("watched") == 1 {
                left = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(left, "round {round}: B still holds the channel");
        // From B to A still works without B listening.
        trigger(&b, &x, "watched", "from-b", &round.to_string()).await;
        on_a.expect_event("from-b").await;
        on_b.expect_silence(Duration::from_millis(200)).await;
    }
    // The opted-in subscriber is still there and still hears its channel.
    trigger(&a, &x, provider, "booked", "{}").await;
    assert_eq!(opted.expect_event("booked").await["channel"], provider);
}
