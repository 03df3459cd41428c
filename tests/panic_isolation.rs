//! A panic inside one connection's handler cannot take the server down: the panic is caught in
//! that connection's task, the connection is dropped and cleaned up exactly as on a disconnect
//! (presence members removed, gauges back), and everyone else carries on.
//!
//! No input makes a handler panic, so the panic is injected: debug builds (which `cargo test`
//! uses) panic on one exact frame after `clarion::ws::fault::enable()` (src/ws/fault.rs).

mod common;

use std::time::Duration;

use common::{channel_auth, TestApp, TestServer};
use serde_json::json;

#[tokio::test]
async fn a_panicking_connection_is_dropped_and_cleaned_up_and_the_others_carry_on() {
    clarion::ws::fault::enable();
    let server = TestServer::start("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n").await;
    let app = TestApp::new("1", "k", "s");
    let channel = "presence-room";
    let (mut victim, victim_id) = server.connect("k").await;
    let (mut other, other_id) = server.connect("k").await;
    for (c, sid, user) in [(&mut victim, &victim_id, 1), (&mut other, &other_id, 2)] {
        let data = json!({"user_id": user}).to_string();
        let auth = channel_auth(&app, sid, channel, Some(&data));
        let answer = c.subscribe(channel, Some(&auth), Some(&data)).await;
        assert_eq!(
            answer["event"], "pusher_internal:subscription_succeeded",
            "{answer}"
        );
    }
    let added = victim.expect_event("pusher_internal:member_added").await;
    assert_eq!(common::decode_data(&added)["user_id"], 2);

    victim.send_text(clarion::ws::fault::PANIC_FRAME).await;

    // The victim's connection ends (no close frame: its task died mid-handler) …
    let end = victim.closed().await;
    assert_eq!(end, common::Closed::NoFrame);
    // … and it was cleaned up like any disconnect: the others see it leave.
    let removed = other.expect_event("pusher_internal:member_removed").await;
    assert_eq!(common::decode_data(&removed)["user_id"], 1);

    // The server still serves: the survivor gets events, the API answers, and the presence
    // channel holds only the survivor.
    let (status, body) = server
        .api(
            &app,
            "POST",
            "/apps/1/events",
            &[],
            &json!({"name": "after", "channel": channel, "data": "{}"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = other.expect_event("after").await;
    assert_eq!(got["channel"], channel);
    let (status, users) = server
        .api(
            &app,
            "GET",
            &format!("/apps/1/channels/{channel}/users"),
            &[],
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(users["users"], json!([{"id": 2}]), "{users}");
    // A new client connects as usual.
    let (mut fresh, _) = server.connect("k").await;
    fresh.expect_silence(Duration::from_millis(100)).await;
}
