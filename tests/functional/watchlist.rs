//! Watchlist events on one node (docs/protocol.md §10.1): who of the watched users is online
//! at sign-in, then one `online` / `offline` per transition, however a connection ends.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

const APP: &str =
    "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenable_watchlist_events = true\n";

const QUIET: Duration = Duration::from_millis(300);

/// The `events` of a `pusher_internal:watchlist_events` frame, checked for its shape.
pub fn watch_events(m: &Value) -> Value {
    assert_eq!(m["event"], "pusher_internal:watchlist_events", "{m}");
    assert!(m.get("channel").is_none(), "no channel: {m}");
    assert!(m["data"].is_string(), "data is a JSON string: {m}");
    decode_data(m)["events"].clone()
}

/// A connection signed in as `id` (with `watchlist` in its user_data, when given).
async fn signed_in(server: &TestServer, id: &str, watchlist: Option<Value>) -> WsClient {
    let (mut c, sid) = server.connect("k").await;
    let mut user = json!({"id": id, "user_info": {"name": id}});
    if let Some(w) = watchlist {
        user["watchlist"] = w;
    }
    c.sign_in(&app1(), &sid, &user.to_string()).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_at_sign_in_then_one_frame_per_transition() {
    let server = TestServer::start(APP).await;
    let mut two = signed_in(&server, "2", None).await;
    let mut watcher = signed_in(&server, "1", Some(json!(["2", 3, "4", 3, "", null]))).await;
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([
            {"name": "online", "user_ids": ["2"]},
            {"name": "offline", "user_ids": ["3", "4"]}
        ]),
        "numbers become strings, duplicates and non-ids are dropped"
    );
    two.expect_silence(QUIET).await;

    // User 3 comes online; a second tab is not a transition.
    let three = signed_in(&server, "3", None).await;
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "online", "user_ids": ["3"]}])
    );
    let mut three_again = signed_in(&server, "3", None).await;
    watcher.expect_silence(QUIET).await;
    drop(three);
    watcher.expect_silence(QUIET).await;
    // The last connection gone, by unsubscribe-free close or by the app terminating it.
    let (status, _) = terminate_user(&server, &app1(), "3").await;
    assert_eq!(status, 200);
    three_again.closed().await;
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "offline", "user_ids": ["3"]}])
    );
    drop(two);
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "offline", "user_ids": ["2"]}])
    );
    // Watching is one-way, and a user nobody watches changes nothing.
    let _five = signed_in(&server, "5", None).await;
    watcher.expect_silence(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_first_hundred_ids_are_watched_after_a_4302() {
    let server = TestServer::start(APP).await;
    let _first = signed_in(&server, "u0", None).await;
    let ids: Vec<String> = (0..150).map(|i| format!("u{i}")).collect();
    let (mut watcher, sid) = server.connect("k").await;
    let user = json!({"id": "w", "watchlist": ids}).to_string();
    watcher.sign_in(&app1(), &sid, &user).await;
    let warning = watcher.recv().await;
    assert_eq!(warning["event"], "pusher:error", "{warning}");
    assert_eq!(
        warning["data"],
        json!({"code": 4302, "message": "Watchlist limit exceeded. Only the first 100 user IDs are accepted."})
    );
    let events = watch_events(&watcher.recv().await);
    assert_eq!(events[0], json!({"name": "online", "user_ids": ["u0"]}));
    let offline = events[1]["user_ids"].as_array().expect("offline ids");
    assert_eq!(offline.len(), 99, "u1..u99");
    assert_eq!(offline.last(), Some(&json!("u99")));
    let _past_the_limit = signed_in(&server, "u100", None).await;
    watcher.expect_silence(QUIET).await;
    let _last_kept = signed_in(&server, "u99", None).await;
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "online", "user_ids": ["u99"]}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watchlist_is_fixed_and_the_switch_is_off_by_default() {
    let server = TestServer::start(&format!(
        "{APP}[[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"s2\"\n"
    ))
    .await;
    // Signing in again as the same id is accepted and changes nothing.
    let (mut watcher, sid) = server.connect("k").await;
    let user = json!({"id": "1", "watchlist": ["2"]}).to_string();
    watcher.sign_in(&app1(), &sid, &user).await;
    let events = watch_events(&watcher.recv().await);
    assert_eq!(events, json!([{"name": "offline", "user_ids": ["2"]}]));
    let again = json!({"id": "1", "watchlist": ["3"]}).to_string();
    watcher.sign_in(&app1(), &sid, &again).await;
    watcher.expect_silence(QUIET).await;
    let _three = signed_in(&server, "3", None).await;
    watcher.expect_silence(QUIET).await;
    let _two = signed_in(&server, "2", None).await;
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "online", "user_ids": ["2"]}])
    );

    // An app without the switch ignores the watchlist entirely.
    let app2 = TestApp::new("2", "k2", "s2");
    let (mut off, sid) = server.connect("k2").await;
    off.sign_in(
        &app2,
        &sid,
        &json!({"id": "1", "watchlist": ["2"]}).to_string(),
    )
    .await;
    let (mut other, sid) = server.connect("k2").await;
    other
        .sign_in(&app2, &sid, &json!({"id": "2"}).to_string())
        .await;
    drop(other);
    off.expect_silence(QUIET).await;
}

/// The next watchlist frame of a watcher that answers every `pusher:ping` meanwhile, so an
/// activity timeout closes only the connection that stays silent.
async fn next_watch_answering_pings(c: &mut WsClient, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = c.try_recv(left).await.expect("a watchlist frame in time");
        if m["event"] == "pusher:ping" {
            c.send(json!({"event": "pusher:pong", "data": {}})).await;
            continue;
        }
        return watch_events(&m);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_ping_gives_one_offline() {
    let server = TestServer::start(&format!("activity_timeout = 1\npong_timeout = 1\n{APP}")).await;
    let mut watcher = signed_in(&server, "1", Some(json!(["2"]))).await;
    assert_eq!(
        next_watch_answering_pings(&mut watcher, WAIT).await,
        json!([{"name": "offline", "user_ids": ["2"]}])
    );
    let mut silent = signed_in(&server, "2", None).await;
    assert_eq!(
        next_watch_answering_pings(&mut watcher, WAIT).await,
        json!([{"name": "online", "user_ids": ["2"]}])
    );
    // The watcher must keep answering pings while user 2 stays silent, so the close is read
    // afterwards from what the silent socket has buffered.
    assert_eq!(
        next_watch_answering_pings(&mut watcher, WAIT).await,
        json!([{"name": "offline", "user_ids": ["2"]}])
    );
    match silent.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4201),
        Closed::NoFrame => panic!("expected close 4201"),
    }
    // Nothing else but pings for a while: the close was one transition.
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(2500);
    while let Some(m) = watcher
        .try_recv(quiet_until.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        assert_eq!(
            m["event"], "pusher:ping",
            "only pings after the offline: {m}"
        );
        watcher
            .send(json!({"event": "pusher:pong", "data": {}}))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_close_gives_one_offline() {
    let server = TestServer::start(&format!("outbound_queue_size = 10\n{APP}")).await;
    let app = app1();
    let mut watcher = signed_in(&server, "1", Some(json!(["slow"]))).await;
    watcher.recv().await;
    // The watched user reads nothing from here on, through a small receive buffer.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("recv buffer size");
    let stream = socket.connect(server.addr).await.expect("tcp connect");
    let url = server.ws_url("k", "?protocol=7&client=js&version=8.4.0&flash=false");
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket handshake");
    let mut slow = WsClient { ws };
    let established = slow.recv().await;
    let sid = decode_data(&established)["socket_id"]
        .as_str()
        .expect("socket_id")
        .to_string();
    slow.sign_in(&app, &sid, &json!({"id": "slow"}).to_string())
        .await;
    let m = slow.subscribe("firehose", Some(""), None).await;
    assert_eq!(m["event"], "pusher_internal:subscription_succeeded", "{m}");
    assert_eq!(
        watch_events(&watcher.recv().await),
        json!([{"name": "online", "user_ids": ["slow"]}])
    );

    let payload = "x".repeat(5 * 1024);
    let mut offline = None;
    for sent in 0..4000 {
        let body =
            json!({"name": "big", "channel": "firehose", "data": format!("{sent}:{payload}")});
        let (status, resp) = server
            .api(&app, "POST", "/apps/1/events", &[], &body.to_string())
            .await;
        assert_eq!(status, 200, "{resp}");
        if let Some(m) = watcher.try_recv(Duration::from_millis(1)).await {
            offline = Some(m);
            break;
        }
    }
    let offline = match offline {
        Some(m) => m,
        None => watcher.recv().await,
    };
    assert_eq!(
        watch_events(&offline),
        json!([{"name": "offline", "user_ids": ["slow"]}])
    );
    watcher.expect_silence(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_sign_in_storm_the_statuses_come_first_and_stay_true() {
    let server = TestServer::start(APP).await;
    let n = 60;
    let frames = crate::common::watch_storm::sign_in_storm(&[&server], n).await;
    for (who, f) in frames.iter().enumerate() {
        crate::common::watch_storm::assert_statuses_first_and_all_online(f, n, who);
    }
}
