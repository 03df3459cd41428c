//! Missed-message recovery in a cluster (docs/recovery.md, the design's §2–§7): two or more
//! nodes with `adapter = "redis"` sharing a real `redis-server`, history kept in Redis. A real
//! WebSocket client speaks what the Echo plugin sends (the `clarion` member in
//! `pusher:subscribe`) and reads positions from the `clarion` stamps; history is read and purged
//! through the signed HTTP API.

mod common;
use common::redis::Redis;
use common::*;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const CHANNEL: &str = "private-provider.42";

const APP: &str =
    "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenable_client_messages = true\n";

/// A cluster node's config: the Redis adapter with `prefix`, app `1`/`k`/`s` with `app_keys`
/// added to `[[apps]]`, recording `private-provider.*` with `window` keys added to the recovery
/// table.
fn config(redis_url: &str, prefix: &str, app_keys: &str, window: &str) -> String {
    format!(
        "adapter = \"redis\"\nredis_url = \"{redis_url}\"\nredis_prefix = \"{prefix}\"\n{APP}{app_keys}\n[[apps.recovery]]\nchannels = [\"private-provider.*\"]\n{window}\n"
    )
}

/// A node of the cluster, ready (connected to Redis).
async fn node(redis: &Redis, prefix: &str, app_keys: &str, window: &str) -> TestServer {
    let s = TestServer::start(&config(&redis.url(), prefix, app_keys, window)).await;
    wait_ready(&s).await;
    s
}

/// Two nodes of one cluster with the same settings.
async fn pair(redis: &Redis, prefix: &str, window: &str) -> (TestServer, TestServer) {
    (
        node(redis, prefix, "", window).await,
        node(redis, prefix, "", window).await,
    )
}

async fn wait_ready(s: &TestServer) {
    for _ in 0..100 {
        if s.raw_http("GET", "/ready", "").await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node never became ready");
}

/// Waits until the node has noticed that Redis is gone (`/ready` answers 503).
async fn wait_not_ready(s: &TestServer) {
    for _ in 0..100 {
        if s.raw_http("GET", "/ready", "").await.0 == 503 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/ready must report 503 while Redis is down");
}

/// Subscribes to a private channel with a `clarion` member (`None`: a plain subscribe).
async fn subscribe(
    c: &mut WsClient,
    app: &TestApp,
    sid: &str,
    channel: &str,
    clarion: Option<Value>,
) {
    let mut data = json!({"channel": channel, "auth": channel_auth(app, sid, channel, None)});
    if let Some(cl) = clarion {
        data["clarion"] = cl;
    }
    c.send(json!({"event": "pusher:subscribe", "data": data}))
        .await;
}

/// Every message until the `clarion:recovery` marker, the marker included.
async fn until_marker(c: &mut WsClient) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let m = c.recv().await;
        let done = m["event"] == "clarion:recovery";
        got.push(m);
        if done {
            return got;
        }
    }
}

/// The `event` names of `frames`.
fn events(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .map(|m| m["event"].as_str().unwrap_or(""))
        .collect()
}

/// `(epoch, offset)` of a frame's stamp.
fn stamp(m: &Value) -> (String, u64) {
    let c = &m["clarion"];
    (
        c["epoch"]
            .as_str()
            .unwrap_or_else(|| panic!("stamped (epoch): {m}"))
            .to_string(),
        c["offset"]
            .as_u64()
            .unwrap_or_else(|| panic!("stamped (offset): {m}")),
    )
}

/// The `n` of a `booked` event's data `{"n":N}`.
fn number(m: &Value) -> u64 {
    decode_data(m)["n"]
        .as_u64()
        .unwrap_or_else(|| panic!("data {{\"n\":N}} in {m}"))
}

/// Publishes `booked` `{"n":N}` on the channel through `server`'s HTTP API (asserts 200).
async fn publish(server: &TestServer, app: &TestApp, n: u64) {
    trigger(server, app, CHANNEL, "booked", &format!("{{\"n\":{n}}}")).await;
}

/// Publishes like [`publish`], retrying while the node answers 503 (its history connection is
/// still coming back after a Redis restart).
async fn publish_once_accepted(server: &TestServer, app: &TestApp, n: u64) {
    let body =
        json!({"name": "booked", "channel": CHANNEL, "data": format!("{{\"n\":{n}}}")}).to_string();
    for _ in 0..100 {
        let (status, resp) = server.api(app, "POST", "/apps/1/events", &[], &body).await;
        if status == 200 {
            assert_eq!(resp, json!({}));
            return;
        }
        assert_eq!(status, 503, "only 503 while history is unavailable: {resp}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the publish of {n} was never accepted after Redis came back");
}

/// Opts in fresh and returns the client, its socket id and the head position.
async fn opted_in(server: &TestServer, app: &TestApp) -> (WsClient, String, (String, u64)) {
    let (mut c, sid) = server.connect("k").await;
    subscribe(&mut c, app, &sid, CHANNEL, Some(json!({"v": 1}))).await;
    let ok = c.recv().await;
    assert_succeeded(&ok, CHANNEL);
    let head = stamp(&ok);
    (c, sid, head)
}

/// Connects to `server` and subscribes from `from`; returns every frame up to the marker.
async fn resubscribe(server: &TestServer, app: &TestApp, from: Value) -> (WsClient, Vec<Value>) {
    let (mut c, sid) = server.connect("k").await;
    subscribe(&mut c, app, &sid, CHANNEL, Some(from)).await;
    let got = until_marker(&mut c).await;
    assert_succeeded(&got[0], CHANNEL);
    (c, got)
}

/// The next text frame exactly as the server sent it (to compare plain frames byte for byte).
async fn recv_raw(c: &mut WsClient) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, c.ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Text(t))) => return t.as_str().to_string(),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => panic!("connection closed"),
            Some(Ok(_)) => continue,
        }
    }
}

/// The plain Pusher frame of `booked` `{"n":N}` on the channel, byte for byte.
fn plain_booked(n: u64) -> String {
    format!(r#"{{"event":"booked","channel":"{CHANNEL}","data":"{{\"n\":{n}}}"}}"#)
}

/// The plain Pusher `subscription_succeeded` of the channel, byte for byte.
fn plain_succeeded() -> String {
    format!(
        r#"{{"event":"pusher_internal:subscription_succeeded","channel":"{CHANNEL}","data":"{{}}"}}"#
    )
}

/// A plain (not opted-in) subscriber of the channel on `server`; asserts the plain answer.
async fn plain_subscriber(server: &TestServer, app: &TestApp) -> WsClient {
    let (mut c, sid) = server.connect("k").await;
    subscribe(&mut c, app, &sid, CHANNEL, None).await;
    assert_eq!(recv_raw(&mut c).await, plain_succeeded());
    c
}

/// `adapter = "redis"` with `[[apps.recovery]]` (and `on_history_error`) is a valid config:
/// history lives in Redis now, so the refusal is gone.
#[test]
fn the_redis_adapter_accepts_recovery_tables() {
    let toml = config(
        "redis://127.0.0.1:6379/0",
        "rc-config",
        "on_history_error = \"deliver\"",
        "history_size = 3\nmax_replay = 3",
    );
    let mut c = clarion::config::Config::from_toml(&toml).expect("config parses");
    c.finish()
        .expect("adapter = \"redis\" with [[apps.recovery]] is accepted");
}

/// Events triggered on either node reach the opted-in subscribers of both nodes exactly once,
/// stamped with consecutive offsets of one epoch, in the same order everywhere; plain subscribers
/// on both nodes get byte-identical Pusher frames without a stamp, in that order too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_either_node_reach_every_subscriber_once_in_one_stamped_order() {
    let redis = Redis::start();
    let (a, b) = pair(&redis, "rc-order", "").await;
    let app = app1();
    let (mut stamped_a, _, (epoch, head)) = opted_in(&a, &app).await;
    let (mut stamped_b, _, head_b) = opted_in(&b, &app).await;
    assert_eq!(
        head_b,
        (epoch.clone(), head),
        "both nodes see one history (one epoch, one head)"
    );
    let mut plain_a = plain_subscriber(&a, &app).await;
    let mut plain_b = plain_subscriber(&b, &app).await;

    for n in 1..=6 {
        let via = if n % 2 == 1 { &a } else { &b };
        publish(via, &app, n).await;
    }

    for (who, c) in [("A", &mut stamped_a), ("B", &mut stamped_b)] {
        for n in 1..=6 {
            let m = c.recv().await;
            assert_eq!(m["event"], "booked", "{who}: {m}");
            assert_eq!(m["channel"], CHANNEL, "{who}: {m}");
            assert_eq!(
                m["data"],
                format!("{{\"n\":{n}}}"),
                "{who}: data byte for byte"
            );
            assert_eq!(
                stamp(&m),
                (epoch.clone(), head + n),
                "{who}: consecutive offsets in publication order"
            );
        }
    }
    for c in [&mut plain_a, &mut plain_b] {
        for n in 1..=6 {
            assert_eq!(
                recv_raw(c).await,
                plain_booked(n),
                "plain subscribers get plain frames"
            );
        }
    }
    // Exactly once: no second copy from the other node.
    for c in [&mut stamped_a, &mut stamped_b, &mut plain_a, &mut plain_b] {
        c.expect_silence(Duration::from_millis(300)).await;
    }
}

/// A subscriber that leaves node A and resubscribes on node B with its last position gets
/// exactly the events it missed (published through both nodes), oldest first, then
/// `recovered:true` with their count, then live events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_moving_to_another_node_recovers_what_it_missed() {
    let redis = Redis::start();
    let (a, b) = pair(&redis, "rc-move", "").await;
    let app = app1();
    let (mut c, old_sid, (epoch, head)) = opted_in(&a, &app).await;
    publish(&a, &app, 1).await;
    publish(&b, &app, 2).await;
    assert_eq!(stamp(&c.recv().await), (epoch.clone(), head + 1));
    let (_, last) = stamp(&c.recv().await);
    assert_eq!(last, head + 2);
    drop(c);

    publish(&b, &app, 3).await;
    publish(&a, &app, 4).await;
    publish(&b, &app, 5).await;
    let from = json!({"v": 1, "epoch": epoch, "offset": last, "prev_socket_id": old_sid});
    let (mut back, got) = resubscribe(&b, &app, from).await;
    assert_eq!(
        events(&got),
        [
            "pusher_internal:subscription_succeeded",
            "booked",
            "booked",
            "booked",
            "clarion:recovery"
        ],
        "{got:?}"
    );
    let top = last + 3;
    assert_eq!(
        stamp(&got[0]),
        (epoch.clone(), top),
        "succeeded carries the head"
    );
    for (i, m) in got[1..4].iter().enumerate() {
        let i = i as u64;
        assert_eq!(stamp(m), (epoch.clone(), last + 1 + i), "{m}");
        assert_eq!(m["data"], format!("{{\"n\":{}}}", 3 + i), "{m}");
    }
    assert_eq!(got[4]["channel"], CHANNEL);
    assert_eq!(
        decode_data(&got[4]),
        json!({"recovered": true, "replayed": 3})
    );
    assert_eq!(
        stamp(&got[4]),
        (epoch.clone(), top),
        "the marker carries the head"
    );

    publish(&a, &app, 6).await;
    let live = back.recv().await;
    assert_eq!(live["data"], "{\"n\":6}");
    assert_eq!(stamp(&live), (epoch, top + 1));
    back.expect_silence(Duration::from_millis(300)).await;
}

/// An event triggered with `socket_id` = the old connection (Laravel's `toOthers()`) is skipped
/// in the replay on the other node when `prev_socket_id` names that connection, and is not
/// counted in `replayed`; without `prev_socket_id` it is replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_sockets_own_events_stay_excluded_across_nodes() {
    let redis = Redis::start();
    let (a, b) = pair(&redis, "rc-others", "").await;
    let app = app1();
    let (c, old_sid, (epoch, head)) = opted_in(&a, &app).await;
    drop(c);
    let own =
        json!({"name": "booked", "channel": CHANNEL, "data": "{\"n\":1}", "socket_id": old_sid});
    trigger_raw(&a, &app, &own.to_string()).await;
    publish(&b, &app, 2).await;

    let from = json!({"v": 1, "epoch": epoch, "offset": head, "prev_socket_id": old_sid});
    let (_back, got) = resubscribe(&b, &app, from).await;
    assert_eq!(
        events(&got),
        [
            "pusher_internal:subscription_succeeded",
            "booked",
            "clarion:recovery"
        ],
        "{got:?}"
    );
    assert_eq!(got[1]["data"], "{\"n\":2}");
    assert_eq!(stamp(&got[1]), (epoch.clone(), head + 2));
    assert_eq!(
        decode_data(&got[2]),
        json!({"recovered": true, "replayed": 1})
    );
    assert_eq!(stamp(&got[2]), (epoch.clone(), head + 2));

    // The same position without prev_socket_id (another client): both events.
    let from = json!({"v": 1, "epoch": epoch, "offset": head});
    let (_other, got) = resubscribe(&a, &app, from).await;
    let data: Vec<&Value> = got[1..got.len() - 1].iter().map(|m| &m["data"]).collect();
    assert_eq!(data, [&json!("{\"n\":1}"), &json!("{\"n\":2}")], "{got:?}");
    assert_eq!(
        decode_data(&got[3]),
        json!({"recovered": true, "replayed": 2})
    );
}

/// While events are triggered continuously, alternately through node A and node B, a client on
/// node B that drops its connection again and again (after live events, and in the middle of a
/// replay) and resubscribes from its last position ends up with every event exactly once, with
/// strictly consecutive offsets, every resubscribe `recovered:true`; a subscriber on node A that
/// never left sees the same offset → event mapping (one order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_reconnecting_subscriber_misses_nothing_and_sees_the_one_order() {
    const TOTAL: u64 = 200;
    // Events read in each connection of the mover before it drops; small ones drop mid-replay.
    const SESSIONS: [usize; 6] = [25, 2, 30, 1, 35, 3];
    let redis = Redis::start();
    let (a, b) = pair(&redis, "rc-load", "").await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let app = app1();
    let (mut watcher, _, (epoch, head)) = opted_in(&a, &app).await;
    let (mut mover, _, start) = opted_in(&b, &app).await;
    assert_eq!(start, (epoch.clone(), head));

    let publisher = tokio::spawn({
        let (a, b) = (a.clone(), b.clone());
        async move {
            let app = app1();
            for n in 0..TOTAL {
                let via = if n % 2 == 0 { &a } else { &b };
                publish(via, &app, n).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });

    let mut seen: Vec<(u64, u64)> = Vec::new(); // (offset, n), as the mover processed them
    let mut pos = head;
    let mut session = 0;
    // The head of the current resubscribe, until its marker has arrived.
    let mut awaiting_marker: Option<u64> = None;
    loop {
        let limit = SESSIONS.get(session).copied().unwrap_or(usize::MAX);
        let mut read = 0;
        while read < limit && seen.len() < TOTAL as usize {
            let m = mover.recv().await;
            match m["event"].as_str() {
                Some("booked") => {
                    let (e, offset) = stamp(&m);
                    assert_eq!(e, epoch, "{m}");
                    assert_eq!(offset, pos + 1, "a gap or a duplicate: {m}");
                    pos = offset;
                    seen.push((offset, number(&m)));
                    read += 1;
                }
                Some("clarion:recovery") => {
                    let top = awaiting_marker
                        .take()
                        .unwrap_or_else(|| panic!("a marker without a position: {m}"));
                    assert_eq!(decode_data(&m)["recovered"], true, "{m}");
                    assert_eq!(stamp(&m), (epoch.clone(), top), "{m}");
                    assert_eq!(pos, top, "the replay ends at the head: {m}");
                }
                _ => panic!("unexpected frame: {m}"),
            }
        }
        if seen.len() == TOTAL as usize {
            break;
        }
        drop(mover);
        session += 1;
        // Away for a moment while events keep coming.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let (mut c, sid) = b.connect("k").await;
        let from = json!({"v": 1, "epoch": epoch, "offset": pos});
        subscribe(&mut c, &app, &sid, CHANNEL, Some(from)).await;
        let ok = c.recv().await;
        assert_succeeded(&ok, CHANNEL);
        let (e, top) = stamp(&ok);
        assert_eq!(e, epoch, "{ok}");
        assert!(top >= pos, "the head is never behind a position: {ok}");
        awaiting_marker = Some(top);
        mover = c;
    }
    if let Some(top) = awaiting_marker {
        let m = mover.recv().await;
        assert_eq!(m["event"], "clarion:recovery", "{m}");
        assert_eq!(decode_data(&m)["recovered"], true, "{m}");
        assert_eq!(stamp(&m), (epoch.clone(), top), "{m}");
    }
    publisher.await.expect("every trigger answered 200");
    assert!(session >= 3, "the mover resubscribed several times");

    let mut numbers: Vec<u64> = seen.iter().map(|(_, n)| *n).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..TOTAL).collect::<Vec<_>>(), "every event once");

    let mut watched = Vec::new();
    for i in 1..=TOTAL {
        let m = watcher.recv().await;
        assert_eq!(m["event"], "booked", "{m}");
        let (e, offset) = stamp(&m);
        assert_eq!((e, offset), (epoch.clone(), head + i), "{m}");
        watched.push((offset, number(&m)));
    }
    assert_eq!(watched, seen, "one order on both nodes");
    watcher.expect_silence(Duration::from_millis(200)).await;
    mover.expect_silence(Duration::from_millis(200)).await;
}

/// History is in Redis, not in a node: events published while the subscriber is away, then the
/// node stopped entirely, are recovered on a node started afterwards, which then delivers live
/// events stamped after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_node_restart() {
    let redis = Redis::start();
    let (a, b) = pair(&redis, "rc-restart", "").await;
    let app = app1();
    let (c, _, (epoch, head)) = opted_in(&a, &app).await;
    drop(c);
    publish(&a, &app, 1).await;
    publish(&b, &app, 2).await;
    drop(a);

    let fresh = node(&redis, "rc-restart", "", "").await;
    let from = json!({"v": 1, "epoch": epoch, "offset": head});
    let (mut back, got) = resubscribe(&fresh, &app, from).await;
    assert_eq!(
        events(&got),
        [
            "pusher_internal:subscription_succeeded",
            "booked",
            "booked",
            "clarion:recovery"
        ],
        "{got:?}"
    );
    assert_eq!(got[1]["data"], "{\"n\":1}");
    assert_eq!(got[2]["data"], "{\"n\":2}");
    assert_eq!(stamp(&got[2]), (epoch.clone(), head + 2));
    assert_eq!(
        decode_data(&got[3]),
        json!({"recovered": true, "replayed": 2})
    );
    assert_eq!(stamp(&got[3]), (epoch.clone(), head + 2));

    publish(&b, &app, 3).await;
    let live = back.recv().await;
    assert_eq!(live["data"], "{\"n\":3}");
    assert_eq!(stamp(&live), (epoch, head + 3));
}

/// Asserts `got` is succeeded + marker only (no replay), the marker
/// `{"recovered":false,"reason":reason}`, both stamped with one head of an epoch other than
/// `old_epoch` (when given); returns the head.
fn assert_not_recovered(got: &[Value], reason: &str, old_epoch: Option<&str>) -> (String, u64) {
    assert_eq!(
        events(got),
        ["pusher_internal:subscription_succeeded", "clarion:recovery"],
        "no replay when not recovered: {got:?}"
    );
    assert_eq!(
        decode_data(&got[1]),
        json!({"recovered": false, "reason": reason}),
        "{got:?}"
    );
    let head = stamp(&got[1]);
    assert_eq!(stamp(&got[0]), head, "succeeded and marker carry the head");
    if let Some(old) = old_epoch {
        assert_ne!(head.0, old, "a new epoch: {got:?}");
    }
    head
}

/// `FLUSHALL` between publish and resubscribe loses the history: the old position gets
/// `recovered:false` `epoch_changed` (never a false `true`, even though the new history has
/// events again at low offsets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_redis_gives_epoch_changed() {
    let redis = Redis::start();
    let (a, b) = pair(&redis, "rc-flush", "").await;
    let app = app1();
    let (mut c, _, (epoch, _)) = opted_in(&a, &app).await;
    publish(&a, &app, 1).await;
    let (_, last) = stamp(&c.recv().await);
    drop(c);
    publish(&b, &app, 2).await;

    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "FLUSHALL"])
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "FLUSHALL: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    publish(&a, &app, 3).await;

    let from = json!({"v": 1, "epoch": epoch, "offset": last});
    let (mut back, got) = resubscribe(&b, &app, from).await;
    let (new_epoch, top) = assert_not_recovered(&got, "epoch_changed", Some(&epoch));
    // It continues from the new head.
    publish(&a, &app, 4).await;
    let live = back.recv().await;
    assert_eq!(live["data"], "{\"n\":4}");
    assert_eq!(stamp(&live), (new_epoch, top + 1));
}

/// A Redis restart (an empty Redis on the same port) between publish and resubscribe gives
/// `recovered:false` `epoch_changed`, never `true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_gives_epoch_changed() {
    let mut redis = Redis::start();
    let (a, b) = pair(&redis, "rc-redis-restart", "").await;
    let app = app1();
    let (c, _, (epoch, head)) = opted_in(&a, &app).await;
    drop(c);
    publish(&a, &app, 1).await;
    publish(&b, &app, 2).await;

    redis.stop();
    redis.spawn();
    wait_ready(&a).await;
    wait_ready(&b).await;
    // New events after the restart, through both nodes (their history connections are back).
    publish_once_accepted(&a, &app, 3).await;
    publish_once_accepted(&b, &app, 4).await;

    let from = json!({"v": 1, "epoch": epoch, "offset": head});
    let (_back, got) = resubscribe(&b, &app, from).await;
    assert_not_recovered(&got, "epoch_changed", Some(&epoch));
}

/// A Redis restart that reloads an older snapshot keeps the channel's epoch and an older top,
/// so offsets would be handed out again; the scripts see another Redis `run_id` and start a new
/// epoch: a client that saw an offset the snapshot lost gets `epoch_changed`, not a replay of
/// different events under the same numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restored_from_an_older_snapshot_gives_epoch_changed() {
    let dir = std::env::temp_dir().join(format!("clarion-rdb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a dump directory");
    let dir_arg = dir.to_string_lossy().to_string();
    let mut redis = Redis::start_with(&["--dir", &dir_arg]);
    let (a, b) = pair(&redis, "rc-snapshot", "").await;
    let app = app1();
    let (mut c, _, (epoch, head)) = opted_in(&a, &app).await;
    publish(&a, &app, 1).await;
    let cli = |cmd: &str| {
        std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), cmd])
            .output()
            .expect("redis-cli runs")
    };
    assert!(cli("SAVE").status.success(), "snapshot after event 1");
    publish(&b, &app, 2).await; // not in the snapshot
    assert_eq!(stamp(&c.recv().await), (epoch.clone(), head + 1));
    let (_, last) = stamp(&c.recv().await);
    assert_eq!(last, head + 2);
    drop(c);

    redis.stop();
    redis.spawn(); // loads the snapshot: the meta says top = head + 1, with the old epoch
    wait_ready(&a).await;
    publish_once_accepted(&a, &app, 3).await;
    let from = json!({"v": 1, "epoch": epoch, "offset": last});
    let (_back, got) = resubscribe(&b, &app, from).await;
    assert_not_recovered(&got, "epoch_changed", Some(&epoch));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node whose bus subscription is cut (here by `CLIENT KILL TYPE pubsub`) may have missed
/// recorded events: when it resubscribes, it closes its opted-in connections with 4200 (plain
/// ones stay), and each client, resubscribing from its position, recovers what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_bus_sends_opted_in_clients_to_recover() {
    let redis = Redis::start();
    let (a, b) = pair(&redis, "rc-bus", "").await;
    let app = app1();
    let (mut c, _, (epoch, head)) = opted_in(&b, &app).await;
    let mut plain = plain_subscriber(&b, &app).await;
    publish(&a, &app, 1).await;
    assert_eq!(stamp(&c.recv().await), (epoch.clone(), head + 1));
    assert_eq!(recv_raw(&mut plain).await, plain_booked(1));

    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "CLIENT",
            "KILL",
            "TYPE",
            "pubsub",
        ])
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "{out:?}");
    publish(&a, &app, 2).await; // possibly while B is not listening
    assert_eq!(
        c.closed().await,
        Closed::Code(
            4200,
            "Missed events on this node; reconnect to recover them".into()
        )
    );
    let from = json!({"v": 1, "epoch": epoch, "offset": head + 1});
    let (_back, got) = resubscribe(&b, &app, from).await;
    assert_eq!(
        events(&got),
        [
            "pusher_internal:subscription_succeeded",
            "booked",
            "clarion:recovery"
        ],
        "{got:?}"
    );
    assert_eq!(got[1]["data"], "{\"n\":2}");
    assert_eq!(
        decode_data(&got[2]),
        json!({"recovered": true, "replayed": 1})
    );
    // The plain subscriber was not closed (it may or may not have had event 2: at most once).
    publish(&a, &app, 3).await;
    loop {
        let m = recv_raw(&mut plain).await;
        if m == plain_booked(3) {
            break;
        }
        assert_eq!(m, plain_booked(2));
    }
}

/// More missed events than `history_size`/`max_replay` (3): `recovered:false`
/// `too_far_behind`, nothing replayed, succeeded and marker stamped with the head, and live
/// events continue after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_too_far_behind_replays_nothing() {
    let redis = Redis::start();
    let (a, b) = pair(&redis, "rc-behind", "history_size = 3\nmax_replay = 3").await;
    let app = app1();
    let (c, _, (epoch, head)) = opted_in(&a, &app).await;
    drop(c);
    for n in 1..=5 {
        let via = if n % 2 == 1 { &a } else { &b };
        publish(via, &app, n).await;
    }
    let from = json!({"v": 1, "epoch": epoch, "offset": head + 1});
    let (mut back, got) = resubscribe(&b, &app, from).await;
    let top = assert_not_recovered(&got, "too_far_behind", None);
    assert_eq!(top, (epoch.clone(), head + 5), "continue from the head");
    publish(&a, &app, 6).await;
    let live = back.recv().await;
    assert_eq!(live["data"], "{\"n\":6}");
    assert_eq!(stamp(&live), (epoch, head + 6));
}

/// A subscribe with a position and a bad signature gets Pusher's `subscription_error` and
/// nothing from history, nor anything live afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_with_a_position_gets_nothing_from_history() {
    let redis = Redis::start();
    let (a, b) = pair(&redis, "rc-thief", "").await;
    let app = app1();
    let (_c, _, (epoch, head)) = opted_in(&a, &app).await;
    publish(&a, &app, 1).await;
    let (mut thief, _) = b.connect("k").await;
    let data = json!({
        "channel": CHANNEL,
        "auth": "k:0000",
        "clarion": {"v": 1, "epoch": epoch, "offset": head},
    });
    thief
        .send(json!({"event": "pusher:subscribe", "data": data}))
        .await;
    let m = thief.recv().await;
    assert_eq!(m["event"], "pusher:subscription_error", "{m}");
    assert_eq!(m["channel"], CHANNEL, "{m}");
    assert!(m.get("clarion").is_none(), "{m}");
    let err = decode_data(&m);
    assert_eq!(err["type"], "AuthError", "{m}");
    assert_eq!(err["status"], 401, "{m}");
    thief.expect_silence(Duration::from_millis(300)).await;
    publish(&a, &app, 2).await;
    thief.expect_silence(Duration::from_millis(300)).await;
}

/// Redis down with the default `on_history_error = "reject"`: a trigger on a recorded channel is
/// refused with 503 and a JSON error and delivered to nobody; a trigger on a channel that is not
/// recorded is still accepted and delivered on the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_recorded_publishes_are_refused_and_others_delivered() {
    let mut redis = Redis::start();
    let server = node(&redis, "rc-reject", "", "").await;
    let app = app1();
    let mut plain = plain_subscriber(&server, &app).await;
    let ok = plain.subscribe("orders", Some(""), None).await;
    assert_succeeded(&ok, "orders");

    redis.stop();
    wait_not_ready(&server).await;
    let body = json!({"name": "booked", "channel": CHANNEL, "data": "{\"n\":1}"}).to_string();
    let (status, resp) = server.api(&app, "POST", "/apps/1/events", &[], &body).await;
    assert_eq!(status, 503, "{resp}");
    assert!(
        resp["error"].as_str().is_some_and(|e| !e.is_empty()),
        "a JSON error body: {resp}"
    );

    trigger(&server, &app, "orders", "created", "{\"id\":1}").await;
    let m = plain.recv().await;
    assert_eq!(
        (m["event"].as_str(), m["channel"].as_str()),
        (Some("created"), Some("orders")),
        "the refused event is delivered to nobody: {m}"
    );
    assert_eq!(m["data"], "{\"id\":1}");
    plain.expect_silence(Duration::from_millis(300)).await;
}

/// Redis down with `on_history_error = "deliver"`: a trigger on a recorded channel is accepted
/// (200) and a plain subscriber on the same node receives the plain, unstamped frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_deliver_mode_delivers_unstamped() {
    let mut redis = Redis::start();
    let server = node(&redis, "rc-deliver", "on_history_error = \"deliver\"", "").await;
    let app = app1();
    let mut plain = plain_subscriber(&server, &app).await;

    redis.stop();
    wait_not_ready(&server).await;
    publish(&server, &app, 1).await;
    assert_eq!(recv_raw(&mut plain).await, plain_booked(1));
    plain.expect_silence(Duration::from_millis(300)).await;
}

/// `on_history_error = "deliver"` while Redis is unresponsive but keeps its data (here
/// `CLIENT PAUSE`, longer than a call's deadline): the event is delivered without a stamp, so
/// the channel's history may miss it; once Redis answers again the history starts a new epoch,
/// and a position from before gets `epoch_changed` rather than a `true` that could hide it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_mode_starts_a_new_epoch_once_redis_answers_again() {
    let redis = Redis::start();
    let server = node(&redis, "rc-rotate", "on_history_error = \"deliver\"", "").await;
    let app = app1();
    let (mut c, _, (epoch, head)) = opted_in(&server, &app).await;
    let mut plain = plain_subscriber(&server, &app).await;
    publish(&server, &app, 1).await;
    assert_eq!(stamp(&c.recv().await), (epoch.clone(), head + 1));
    assert_eq!(recv_raw(&mut plain).await, plain_booked(1));
    drop(c);

    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "CLIENT",
            "PAUSE",
            "2500",
            "ALL",
        ])
        .output()
        .expect("redis-cli runs");
    assert!(out.status.success(), "{out:?}");
    publish(&server, &app, 2).await; // answered 200 after the history call's deadline
    assert_eq!(recv_raw(&mut plain).await, plain_booked(2));
    wait_ready(&server).await;

    let from = json!({"v": 1, "epoch": epoch, "offset": head + 1});
    let (_back, got) = resubscribe(&server, &app, from).await;
    assert_not_recovered(&got, "epoch_changed", Some(&epoch));
}

/// The signed HTTP history on node B lists events published through node A (`epoch`, `top`,
/// `complete`, `items` with offset, event, data and time); `limit=0` is only the position;
/// `DELETE` purges, and the old position then gets `recovered:false` `epoch_changed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_history_is_the_clusters_and_can_be_purged() {
    let redis = Redis::start();
    let (a, b) = pair(&redis, "rc-http", "").await;
    let app = app1();
    let path = format!("/apps/1/channels/{CHANNEL}/history");
    let (c, _, (epoch, head)) = opted_in(&b, &app).await;
    drop(c);
    for n in 1..=3 {
        publish(&a, &app, n).await;
    }

    let (status, page) = b.api(&app, "GET", &path, &[("limit", "10")], "").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["epoch"], json!(epoch), "{page}");
    assert_eq!(page["top"], head + 3, "{page}");
    assert_eq!(page["complete"], true, "{page}");
    let items = page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items: {page}"));
    assert_eq!(items.len(), 3, "{page}");
    for (i, item) in items.iter().enumerate() {
        let i = i as u64;
        assert_eq!(item["offset"], head + 1 + i, "{page}");
        assert_eq!(item["event"], "booked", "{page}");
        assert_eq!(item["data"], format!("{{\"n\":{}}}", i + 1), "{page}");
        assert!(
            item["time_ms"]
                .as_u64()
                .is_some_and(|t| t > 1_600_000_000_000),
            "{page}"
        );
    }

    let (status, position) = b.api(&app, "GET", &path, &[("limit", "0")], "").await;
    assert_eq!(status, 200, "{position}");
    assert_eq!(position, json!({"epoch": epoch, "top": head + 3}));

    let (status, body) = a.api(&app, "DELETE", &path, &[], "").await;
    assert_eq!((status, body), (200, json!({})));
    let from = json!({"v": 1, "epoch": epoch, "offset": head + 1});
    let (_back, got) = resubscribe(&b, &app, from).await;
    assert_not_recovered(&got, "epoch_changed", Some(&epoch));
    let (_, fresh) = b.api(&app, "GET", &path, &[("limit", "0")], "").await;
    assert_ne!(fresh["epoch"], json!(epoch), "{fresh}");
}

/// Redis down during an opted-in subscribe with a position: the subscribe still succeeds, and
/// the marker says `{"recovered":false,"reason":"unavailable"}`; no head is known, so neither the
/// succeeded frame nor the marker is stamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_resubscribe_succeeds_and_says_unavailable() {
    let mut redis = Redis::start();
    let (a, b) = pair(&redis, "rc-unavailable", "").await;
    let app = app1();
    let (c, _, (epoch, head)) = opted_in(&b, &app).await;
    drop(c);
    publish(&a, &app, 1).await;

    redis.stop();
    wait_not_ready(&b).await;
    let (mut c, sid) = b.connect("k").await;
    let from = json!({"v": 1, "epoch": epoch, "offset": head});
    subscribe(&mut c, &app, &sid, CHANNEL, Some(from)).await;
    let got = until_marker(&mut c).await;
    assert_eq!(
        events(&got),
        ["pusher_internal:subscription_succeeded", "clarion:recovery"],
        "{got:?}"
    );
    assert_eq!(got[0]["channel"], CHANNEL);
    assert!(got[0].get("clarion").is_none(), "no head known: {got:?}");
    assert_eq!(got[1]["channel"], CHANNEL);
    assert_eq!(
        decode_data(&got[1]),
        json!({"recovered": false, "reason": "unavailable"})
    );
    assert!(got[1].get("clarion").is_none(), "no head known: {got:?}");
    c.expect_silence(Duration::from_millis(300)).await;
}
