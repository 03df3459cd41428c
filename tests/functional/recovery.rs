//! Missed-message recovery on one node (memory history), docs/recovery.md §2–§3, with a real
//! WebSocket client speaking what the Echo plugin will send: the `clarion` member in
//! `pusher:subscribe`, positions read from the `clarion` stamps.

use crate::common::*;

use std::time::Duration;

use serde_json::{json, Value};

const CHANNEL: &str = "private-provider.42";

/// App `1`/`k`/`s` recording `private-provider.*` with `window` keys added to the recovery
/// table.
fn config(window: &str) -> String {
    format!(
        "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenable_client_messages = true\n[[apps.recovery]]\nchannels = [\"private-provider.*\"]\n{window}\n"
    )
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

/// `(epoch, offset)` of a frame's stamp.
fn stamp(m: &Value) -> (String, u64) {
    let c = &m["clarion"];
    (
        c["epoch"].as_str().expect("stamped: epoch").to_string(),
        c["offset"].as_u64().expect("stamped: offset"),
    )
}

async fn publish(server: &TestServer, app: &TestApp, n: u64) {
    trigger(server, app, CHANNEL, "booked", &format!("{{\"n\":{n}}}")).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_do_not_opt_in_see_plain_pusher_frames() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let (mut plain, sid) = server.connect("k").await;
    subscribe(&mut plain, &app, &sid, CHANNEL, None).await;
    let ok = plain.recv().await;
    assert_eq!(
        ok,
        json!({"event": "pusher_internal:subscription_succeeded", "channel": CHANNEL, "data": "{}"})
    );
    let (mut stamped, _, _) = opted_in(&server, &app).await;
    publish(&server, &app, 1).await;
    let m = plain.recv().await;
    assert_eq!(
        m,
        json!({"event": "booked", "channel": CHANNEL, "data": "{\"n\":1}"}),
        "no clarion field for a plain subscriber"
    );
    let s = stamped.recv().await;
    assert_eq!(stamp(&s).1, 1);
    assert_eq!(s["data"], "{\"n\":1}", "data byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resubscribe_replays_what_was_missed_in_order_once_then_goes_live() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let (mut c, _, head) = opted_in(&server, &app).await;
    assert_eq!(head.1, 0, "nothing published yet");
    publish(&server, &app, 1).await;
    publish(&server, &app, 2).await;
    let (epoch, last) = stamp(&c.recv().await);
    assert_eq!(stamp(&c.recv().await), (epoch.clone(), last + 1));
    drop(c);

    for n in 3..=5 {
        publish(&server, &app, n).await;
    }
    let (mut back, sid) = server.connect("k").await;
    let from = json!({"v": 1, "epoch": epoch, "offset": 2});
    subscribe(&mut back, &app, &sid, CHANNEL, Some(from)).await;
    let got = until_marker(&mut back).await;
    let events: Vec<&str> = got
        .iter()
        .map(|m| m["event"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        events,
        [
            "pusher_internal:subscription_succeeded",
            "booked",
            "booked",
            "booked",
            "clarion:recovery"
        ]
    );
    assert_eq!(
        stamp(&got[0]),
        (epoch.clone(), 5),
        "succeeded carries the head"
    );
    let replayed: Vec<u64> = got[1..4].iter().map(|m| stamp(m).1).collect();
    assert_eq!(replayed, [3, 4, 5]);
    assert_eq!(got[1]["data"], "{\"n\":3}");
    assert_eq!(
        decode_data(&got[4]),
        json!({"recovered": true, "replayed": 3})
    );
    assert_eq!(stamp(&got[4]), (epoch.clone(), 5));

    publish(&server, &app, 6).await;
    let live = back.recv().await;
    assert_eq!(stamp(&live), (epoch, 6));
    back.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_old_socket_was_excluded_from_stay_excluded() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let (c, old_sid, (epoch, _)) = opted_in(&server, &app).await;
    drop(c);
    // Laravel's toOthers(): the event the old connection itself caused.
    let own =
        json!({"name": "booked", "channel": CHANNEL, "data": "{\"n\":1}", "socket_id": old_sid});
    trigger_raw(&server, &app, &own.to_string()).await;
    publish(&server, &app, 2).await;
    let (mut back, sid) = server.connect("k").await;
    let from = json!({"v": 1, "epoch": epoch, "offset": 0, "prev_socket_id": old_sid});
    subscribe(&mut back, &app, &sid, CHANNEL, Some(from)).await;
    let got = until_marker(&mut back).await;
    assert_eq!(got.len(), 3, "succeeded, event 2, marker: {got:?}");
    assert_eq!(got[1]["data"], "{\"n\":2}");
    assert_eq!(
        decode_data(&got[2]),
        json!({"recovered": true, "replayed": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_that_cannot_be_recovered_say_so_and_replay_nothing() {
    let server = TestServer::start(&config("history_size = 3\nmax_replay = 3")).await;
    let app = app1();
    let (_c, _, (epoch, _)) = opted_in(&server, &app).await;
    for n in 1..=5 {
        publish(&server, &app, n).await;
    }
    for (from, reason) in [
        (
            json!({"v": 1, "epoch": "unknown", "offset": 1}),
            "epoch_changed",
        ),
        (
            json!({"v": 1, "epoch": epoch, "offset": 9}),
            "epoch_changed",
        ),
        (
            json!({"v": 1, "epoch": epoch, "offset": 1}),
            "too_far_behind",
        ),
    ] {
        let (mut c, sid) = server.connect("k").await;
        subscribe(&mut c, &app, &sid, CHANNEL, Some(from.clone())).await;
        let got = until_marker(&mut c).await;
        assert_eq!(got.len(), 2, "no partial replay for {from}: {got:?}");
        assert_eq!(
            decode_data(&got[1]),
            json!({"recovered": false, "reason": reason}),
            "{from}"
        );
        assert_eq!(stamp(&got[1]).1, 5, "continue from the head");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_older_than_the_window_have_expired() {
    let server = TestServer::start(&config("history_ttl = 1")).await;
    let app = app1();
    let (_c, _, (epoch, _)) = opted_in(&server, &app).await;
    publish(&server, &app, 1).await;
    publish(&server, &app, 2).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (mut c, sid) = server.connect("k").await;
    let from = json!({"v": 1, "epoch": epoch, "offset": 1});
    subscribe(&mut c, &app, &sid, CHANNEL, Some(from)).await;
    let got = until_marker(&mut c).await;
    assert_eq!(
        decode_data(&got[1]),
        json!({"recovered": false, "reason": "expired"})
    );
}

/// Over `max_history_memory`, the least recently published channels are forgotten (a position
/// in one gets `epoch_changed`, never a false `true`), and the channel just published to keeps
/// its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_memory_cap_the_least_recently_published_channels_are_forgotten() {
    let toml = format!(
        "max_history_memory = 4096\n{}",
        config("history_size = 5\nmax_replay = 5")
    );
    let server = TestServer::start(&toml).await;
    let app = app1();
    let quiet = "private-provider.0";
    let last = "private-provider.9";
    let head = |channel: &'static str| {
        let (server, app) = (&server, &app);
        async move {
            let (mut probe, sid) = server.connect("k").await;
            subscribe(&mut probe, app, &sid, channel, Some(json!({"v": 1}))).await;
            stamp(&probe.recv().await)
        }
    };
    let (quiet_epoch, _) = head(quiet).await;
    trigger(&server, &app, quiet, "booked", "{\"n\":1}").await;
    // Nine more channels with five events of about 300 bytes each: over 4 KiB together.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(250));
    for n in 1..=9 {
        let channel = format!("private-provider.{n}");
        for _ in 0..5 {
            trigger(&server, &app, &channel, "booked", &big).await;
        }
    }
    let (mut back, sid) = server.connect("k").await;
    let from = json!({"v": 1, "epoch": quiet_epoch, "offset": 0});
    subscribe(&mut back, &app, &sid, quiet, Some(from)).await;
    let got = until_marker(&mut back).await;
    assert_eq!(
        decode_data(&got[1]),
        json!({"recovered": false, "reason": "epoch_changed"}),
        "{got:?}"
    );
    let (epoch, top) = head(last).await;
    assert_eq!(top, 5, "the channel just published to kept its history");
    let (mut again, sid) = server.connect("k").await;
    let from = json!({"v": 1, "epoch": epoch, "offset": 2});
    subscribe(&mut again, &app, &sid, last, Some(from)).await;
    let got = until_marker(&mut again).await;
    assert_eq!(
        decode_data(got.last().expect("marker")),
        json!({"recovered": true, "replayed": 3})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_with_a_position_gets_nothing_from_history() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let (_c, _, (epoch, _)) = opted_in(&server, &app).await;
    publish(&server, &app, 1).await;
    let (mut thief, _) = server.connect("k").await;
    let data = json!({
        "channel": CHANNEL,
        "auth": "k:0000",
        "clarion": {"v": 1, "epoch": epoch, "offset": 0},
    });
    thief
        .send(json!({"event": "pusher:subscribe", "data": data}))
        .await;
    let m = thief.recv().await;
    assert_eq!(m["event"], "pusher:subscription_error", "{m}");
    thief.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrecorded_channels_and_malformed_requests_are_plain_subscribes() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    for (channel, clarion) in [
        ("private-client.7", json!({"v": 1})),
        (CHANNEL, json!({"v": 1, "epoch": "only-an-epoch"})),
        (CHANNEL, json!({"v": 2})),
    ] {
        let (mut c, sid) = server.connect("k").await;
        subscribe(&mut c, &app, &sid, channel, Some(clarion.clone())).await;
        let ok = c.recv().await;
        assert_succeeded(&ok, channel);
        assert!(ok.get("clarion").is_none(), "{clarion}: {ok}");
        sync(&mut c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_client_events_are_stamped_and_replayed_but_not_to_their_sender() {
    let server = TestServer::start(&config("record_client_events = true")).await;
    let app = app1();
    let (mut sender, _, (epoch, _)) = opted_in(&server, &app).await;
    let (mut peer, peer_sid, _) = opted_in(&server, &app).await;
    sender
        .send(json!({"event": "client-typing", "channel": CHANNEL, "data": {"who": "a"}}))
        .await;
    let m = peer.recv().await;
    assert_eq!(m["event"], "client-typing");
    assert_eq!(stamp(&m), (epoch.clone(), 1));
    sender.expect_silence(Duration::from_millis(200)).await;
    drop(peer);
    let (mut back, sid) = server.connect("k").await;
    let from = json!({"v": 1, "epoch": epoch, "offset": 0, "prev_socket_id": peer_sid});
    subscribe(&mut back, &app, &sid, CHANNEL, Some(from)).await;
    let got = until_marker(&mut back).await;
    assert_eq!(got[1]["event"], "client-typing", "{got:?}");
    assert_eq!(
        decode_data(&got[2]),
        json!({"recovered": true, "replayed": 1})
    );
}

/// `GET …/history` lists what a recorded channel holds, signed like the rest of the API;
/// `limit=0` is only the position; another epoch lists nothing; `DELETE` starts a new epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_history_lists_positions_and_events_and_can_be_purged() {
    let server = TestServer::start(&config("history_size = 3\nmax_replay = 3")).await;
    let app = app1();
    let path = format!("/apps/1/channels/{CHANNEL}/history");
    let get = |query: Vec<(&'static str, String)>| {
        let server = &server;
        let app = &app;
        let path = path.clone();
        async move {
            let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            server.api(app, "GET", &path, &q, "").await
        }
    };

    // Before any event: the position the next publish will number after.
    let (status, head) = get(vec![("limit", "0".into())]).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(head["top"], 0);
    let epoch = head["epoch"].as_str().expect("an epoch").to_string();
    assert_eq!(
        head.as_object().map(|o| o.len()),
        Some(2),
        "only epoch and top: {head}"
    );

    for n in 1..=4 {
        publish(&server, &app, n).await;
    }
    let (status, page) = get(vec![("epoch", epoch.clone()), ("after", "2".into())]).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (page["epoch"].as_str(), &page["top"]),
        (Some(epoch.as_str()), &json!(4))
    );
    assert_eq!(page["complete"], true);
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["offset"], 3);
    assert_eq!(items[0]["event"], "booked");
    assert_eq!(items[0]["data"], "{\"n\":3}");
    assert!(items[0]["time_ms"]
        .as_u64()
        .is_some_and(|t| t > 1_600_000_000_000));

    // Offset 1 fell out of the ring of 3: not complete. Another epoch: nothing.
    let (_, gone) = get(vec![("after", "0".into())]).await;
    assert_eq!(gone["complete"], false);
    assert_eq!(gone["items"].as_array().map(Vec::len), Some(3));
    let (_, other) = get(vec![("epoch", "another".into())]).await;
    assert_eq!(
        (other["complete"].clone(), other["items"].clone()),
        (json!(false), json!([]))
    );
    let (status, _) = get(vec![("limit", "4".into())]).await;
    assert_eq!(status, 400, "over max_replay");

    // Purged: a new epoch, counting from 0 again.
    let (status, body) = server.api(&app, "DELETE", &path, &[], "").await;
    assert_eq!((status, body), (200, json!({})));
    let (_, fresh) = get(vec![("limit", "0".into())]).await;
    assert_ne!(fresh["epoch"], json!(epoch));
    assert_eq!(fresh["top"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_only_for_recorded_channels_and_signed_callers() {
    let server = TestServer::start(&config("")).await;
    let app = app1();
    let (status, body) = server
        .api(
            &app,
            "GET",
            "/apps/1/channels/private-client.1/history",
            &[],
            "",
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("keeps no history")));
    let (status, _) = server
        .raw_http("GET", &format!("/apps/1/channels/{CHANNEL}/history"), "")
        .await;
    assert_eq!(status, 401, "unsigned");
    let wrong = TestApp::new("1", "k", "not-the-secret");
    let (status, _) = server
        .api(
            &wrong,
            "DELETE",
            &format!("/apps/1/channels/{CHANNEL}/history"),
            &[],
            "",
        )
        .await;
    assert_eq!(status, 401, "a forged purge is refused");
}

/// The recovery metrics count appends, recoveries by result and replayed events, and the memory
/// history's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_appends_recoveries_and_history_bytes() {
    let (server, port) = TestServer::start_with_metrics(&config("")).await;
    let app = app1();
    let (c, _, (epoch, _)) = opted_in(&server, &app).await;
    drop(c);
    for n in 1..=3 {
        publish(&server, &app, n).await;
    }
    for from in [
        json!({"v": 1, "epoch": epoch, "offset": 1}),
        json!({"v": 1, "epoch": "gone", "offset": 1}),
    ] {
        let (mut c, sid) = server.connect("k").await;
        subscribe(&mut c, &app, &sid, CHANNEL, Some(from)).await;
        until_marker(&mut c).await;
    }
    let text = crate::common::process::scrape(port).await;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(value("clarion_history_appends_total{app_id=\"1\"}"), 3.0);
    assert_eq!(
        value("clarion_recoveries_total{app_id=\"1\",result=\"recovered\"}"),
        1.0
    );
    assert_eq!(
        value("clarion_recoveries_total{app_id=\"1\",result=\"epoch_changed\"}"),
        1.0
    );
    assert_eq!(
        value("clarion_recovery_replayed_events_total{app_id=\"1\"}"),
        2.0
    );
    assert!(value("clarion_history_bytes{app_id=\"1\"}") > 100.0);
}
