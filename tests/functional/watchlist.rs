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
