//! SECURITY.md 1, the user promises: only the connection signed in as exactly X gets
//! `#server-to-user-X`, and a presence member's or a client event's `user_id` cannot be spoofed.

use super::*;

// ---------------------------------------------------------------------------------------------
// #server-to-user-{id}
// ---------------------------------------------------------------------------------------------

/// Only a connection signed in as exactly `42` may subscribe to `#server-to-user-42`: not a
/// presence member claiming 42, not a failed sign-in as 42, not users 4 or 420. Events sent to
/// the user (single trigger and batch) reach that connection alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_to_user_channel_needs_a_sign_in_as_exactly_that_user() {
    let server = TestServer::start(TWO_APPS).await;
    let a = app_a();
    let ch = "#server-to-user-42";

    // A presence member "42" that never signed in.
    let (mut member, sid) = server.connect("key-a").await;
    join_presence(&mut member, &a, &sid, "presence-p", r#"{"user_id":"42"}"#).await;
    assert_auth_error(
        "presence member 42",
        &member.subscribe(ch, Some(""), None).await,
        ch,
    );

    // A sign-in as 42 with a bad signature, then the channel.
    let (mut failed, sid) = server.connect("key-a").await;
    let wrong = TestApp::new("app-a", "key-a", "not-the-secret");
    let m = signin(&mut failed, &wrong, &sid, r#"{"id":"42"}"#).await;
    assert_eq!(m["event"], "pusher:error", "{m}");
    assert_auth_error(
        "failed sign-in as 42",
        &failed.subscribe(ch, Some(""), None).await,
        ch,
    );

    // Users whose id is a prefix or an extension of 42.
    let mut others = Vec::new();
    for id in ["4", "420", "42 "] {
        let (mut c, sid) = server.connect("key-a").await;
        signin_ok(&mut c, &a, &sid, &json!({"id": id}).to_string()).await;
        assert_auth_error(
            &format!("user {id:?}"),
            &c.subscribe(ch, Some(""), None).await,
            ch,
        );
        others.push(c);
    }

    // 42 itself.
    let (mut user42, sid) = server.connect("key-a").await;
    signin_ok(&mut user42, &a, &sid, r#"{"id":"42"}"#).await;
    assert_succeeded(&user42.subscribe(ch, Some(""), None).await, ch);

    trigger(&server, &a, ch, "single", "{\"n\":1}").await;
    let body = json!({"batch": [{"name": "batched", "channel": ch, "data": "{\"n\":2}"}]});
    let (status, resp) = server
        .api(
            &a,
            "POST",
            "/apps/app-a/batch_events",
            &[],
            &body.to_string(),
        )
        .await;
    assert_eq!((status, resp), (200, json!({})));
    let m = next_is_on(&mut user42, "single", ch).await;
    assert_eq!(m["data"], "{\"n\":1}");
    let m = next_is_on(&mut user42, "batched", ch).await;
    assert_eq!(m["data"], "{\"n\":2}");

    assert_nothing_queued(&mut member, "presence member 42").await;
    assert_nothing_queued(&mut failed, "failed sign-in as 42").await;
    for c in &mut others {
        assert_nothing_queued(c, "another user").await;
    }
}

/// A connection signed in as X that signs in again as Y stays X (docs/protocol.md §10.1,
/// Pusher's rule): the second sign-in gets a non-fatal `pusher:error` 4009, the connection keeps
/// `#server-to-user-X` and cannot subscribe to `#server-to-user-Y`. Signing in again as X is
/// accepted.
// History: an earlier version switched identities and kept `#server-to-user-X`, so a connection
// signed in as bob kept receiving alice's private messages; then it switched and gave the
// channel up; now the switch is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_as_another_user_is_refused_and_the_first_identity_stays() {
    let server = TestServer::start(TWO_APPS).await;
    let a = app_a();
    let (mut c, sid) = server.connect("key-a").await;
    signin_ok(&mut c, &a, &sid, r#"{"id":"alice"}"#).await;
    let alice = "#server-to-user-alice";
    assert_succeeded(&c.subscribe(alice, Some(""), None).await, alice);

    // Same socket, a valid signature from the app for bob: refused, not fatal.
    let bob_data = r#"{"id":"bob"}"#;
    c.send(json!({"event": "pusher:signin", "data": {"auth": user_auth(&a, &sid, bob_data), "user_data": bob_data}}))
        .await;
    let refused = c.recv().await;
    assert_eq!(refused["event"], "pusher:error", "{refused}");
    assert_eq!(refused["data"]["code"], 4009, "{refused}");
    let bob = "#server-to-user-bob";
    assert_auth_error("still alice", &c.subscribe(bob, Some(""), None).await, bob);
    trigger(&server, &a, alice, "for-alice", "{}").await;
    c.expect_event("for-alice").await;
    // Signing in again as alice is fine.
    signin_ok(&mut c, &a, &sid, r#"{"id":"alice"}"#).await;
}

// ---------------------------------------------------------------------------------------------
// Presence user_id cannot be spoofed
// ---------------------------------------------------------------------------------------------

/// A presence subscription cannot claim a user the app did not sign: channel_data for user 2
/// under a signature for user 1 is refused, as is another socket's valid authorization replayed
/// on this one. The member list (to members and through the API) holds only signed users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_members_are_only_the_users_the_app_signed() {
    let server = TestServer::start(TWO_APPS).await;
    let a = app_a();
    let ch = "presence-room";
    let user1 = r#"{"user_id":"1","user_info":{"name":"Alice"}}"#;
    let (mut alice, alice_sid) = server.connect("key-a").await;
    join_presence(&mut alice, &a, &alice_sid, ch, user1).await;

    let (mut mallory, sid) = server.connect("key-a").await;
    // Signed for user 1, but the channel_data says user 2 (or user 1 with other info).
    let auth_for_1 = channel_auth(&a, &sid, ch, Some(user1));
    for claimed in [
        r#"{"user_id":"2","user_info":{"name":"Alice"}}"#,
        r#"{"user_id":"2"}"#,
        r#"{"user_id":2,"user_info":{"name":"Alice"}}"#,
        r#"{"user_id":"1","user_info":{"name":"Admin"}}"#,
    ] {
        let m = mallory
            .subscribe(ch, Some(&auth_for_1), Some(claimed))
            .await;
        assert_auth_error(&format!("claimed {claimed}"), &m, ch);
    }
    // Alice's own authorization, replayed from her socket on Mallory's.
    let alice_auth = channel_auth(&a, &alice_sid, ch, Some(user1));
    let m = mallory.subscribe(ch, Some(&alice_auth), Some(user1)).await;
    assert_auth_error("replayed authorization of another socket", &m, ch);
    // No channel_data, not signed in.
    let auth = channel_auth(&a, &sid, ch, None);
    assert_auth_error(
        "no channel_data",
        &mallory.subscribe(ch, Some(&auth), None).await,
        ch,
    );

    // Nobody joined: Alice heard of no member, and the list is Alice alone.
    assert_nothing_queued(&mut alice, "the only real member").await;
    assert_eq!(api_users(&server, &a, ch).await, ["1"]);
    let (status, info) = server
        .api(
            &a,
            "GET",
            "/apps/app-a/channels/presence-room",
            &[("info", "user_count")],
            "",
        )
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["user_count"], 1, "{info}");
    // Mallory is not subscribed: events of the channel do not reach her.
    trigger(&server, &a, ch, "members-only", "{}").await;
    next_is_on(&mut alice, "members-only", ch).await;
    assert_nothing_queued(&mut mallory, "a refused presence subscriber").await;

    // When the app signs user 2 for her socket, she joins as 2 and only as 2.
    let user2 = r#"{"user_id":"2"}"#;
    let joined = join_presence(&mut mallory, &a, &sid, ch, user2).await;
    assert_eq!(presence_ids(&joined), ["1", "2"], "{joined}");
    let m = next_is_on(&mut alice, "pusher_internal:member_added", ch).await;
    assert_eq!(decode_data(&m)["user_id"], "2", "{m}");
    assert_eq!(api_users(&server, &a, ch).await, ["1", "2"]);
}

/// The `user_id` of a client event on a presence channel is the server's idea of the sender,
/// whatever the sender writes in its frame; on a private channel a `user_id` from the client is
/// not forwarded at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_user_id_is_the_servers_not_the_senders() {
    let server = TestServer::start(TWO_APPS).await;
    let a = app_a();
    let (mut alice, sid) = server.connect("key-a").await;
    join_presence(&mut alice, &a, &sid, "presence-room", r#"{"user_id":"1"}"#).await;
    join_private(&mut alice, &a, &sid, "private-room").await;
    let (mut mallory, sid) = server.connect("key-a").await;
    signin_ok(&mut mallory, &a, &sid, r#"{"id":"2"}"#).await;
    join_presence(
        &mut mallory,
        &a,
        &sid,
        "presence-room",
        r#"{"user_id":"2"}"#,
    )
    .await;
    join_private(&mut mallory, &a, &sid, "private-room").await;
    next_is_on(&mut alice, "pusher_internal:member_added", "presence-room").await;

    for forged in [
        json!("1"),
        json!(1),
        json!("admin"),
        json!(null),
        json!({"id": "1"}),
    ] {
        mallory
            .send(json!({
                "event": "client-msg",
                "channel": "presence-room",
                "data": {"text": "hi"},
                "user_id": forged,
            }))
            .await;
        let m = next_is_on(&mut alice, "client-msg", "presence-room").await;
        assert_eq!(
            m["user_id"], "2",
            "forged user_id {forged} must be replaced by the sender's: {m}"
        );

        mallory
            .send(json!({
                "event": "client-msg",
                "channel": "private-room",
                "data": {"text": "hi"},
                "user_id": forged,
            }))
            .await;
        let m = next_is_on(&mut alice, "client-msg", "private-room").await;
        assert!(
            m.get("user_id").is_none(),
            "a client's user_id must not be forwarded on a private channel: {m}"
        );
        assert_eq!(m["data"], json!({"text": "hi"}), "{m}");
    }
}
