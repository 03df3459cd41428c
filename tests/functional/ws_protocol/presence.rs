//! Presence channels: the member list, member_added/member_removed, user ids as sent, the
//! member limits.

use super::*;

/// The decoded `presence` object of a presence `subscription_succeeded`; asserts `data` is a
/// JSON string (double encoding).
fn presence_of(m: &Value) -> Value {
    assert!(
        m["data"].is_string(),
        "presence subscription_succeeded data must be a JSON string: {m}"
    );
    decode_data(m)["presence"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_subscription_succeeded_lists_members_including_self() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-room";
    let (mut c1, sid1) = server.connect("k").await;
    let ok = sub_presence(
        &mut c1,
        &app,
        &sid1,
        ch,
        r#"{"user_id":"u1","user_info":{"name":"Ann"}}"#,
    )
    .await;
    assert_succeeded(&ok, ch);
    let p = presence_of(&ok);
    assert_eq!(p["ids"], json!(["u1"]), "{ok}");
    assert_eq!(p["hash"], json!({"u1": {"name": "Ann"}}), "{ok}");
    assert_eq!(p["count"], 1, "{ok}");

    let (mut c2, sid2) = server.connect("k").await;
    let ok = sub_presence(
        &mut c2,
        &app,
        &sid2,
        ch,
        r#"{"user_id":"u2","user_info":{"name":"Bob"}}"#,
    )
    .await;
    let p = presence_of(&ok);
    assert_eq!(p["count"], 2, "{ok}");
    let mut ids: Vec<String> = p["ids"]
        .as_array()
        .expect("ids array")
        .iter()
        .map(|v| v.as_str().expect("string id").to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["u1", "u2"], "{ok}");
    assert_eq!(
        p["hash"],
        json!({"u1": {"name": "Ann"}, "u2": {"name": "Bob"}}),
        "{ok}"
    );

    // The first member hears about the second.
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_added", "{m}");
    assert_eq!(m["channel"], ch, "{m}");
    assert!(
        m["data"].is_string(),
        "member_added data must be a string: {m}"
    );
    assert_eq!(
        decode_data(&m),
        json!({"user_id": "u2", "user_info": {"name": "Bob"}}),
        "{m}"
    );
    // The joiner does not hear about itself.
    c2.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_bad_signature_or_channel_data_is_auth_error() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-room";
    let (mut c, sid) = server.connect("k").await;
    let data = r#"{"user_id":"u1"}"#;
    // Signed without channel_data (as for a private channel).
    let auth = channel_auth(&app, &sid, ch, None);
    let m = c.subscribe(ch, Some(&auth), Some(data)).await;
    assert_sub_error(&m, ch, "AuthError", 401);
    // Signed over other channel_data than sent.
    let auth = channel_auth(&app, &sid, ch, Some(r#"{"user_id":"admin"}"#));
    let m = c.subscribe(ch, Some(&auth), Some(data)).await;
    assert_sub_error(&m, ch, "AuthError", 401);
    // Correct.
    let ok = sub_presence(&mut c, &app, &sid, ch, data).await;
    assert_succeeded(&ok, ch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_same_user_on_two_connections_is_one_member() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-chat.1";
    let (mut c1, sid1) = server.connect("k").await;
    sub_presence(&mut c1, &app, &sid1, ch, r#"{"user_id":"u1"}"#).await;

    let bob = r#"{"user_id":"u2","user_info":{"name":"Bob"}}"#;
    let (mut c2, sid2) = server.connect("k").await;
    assert_succeeded(&sub_presence(&mut c2, &app, &sid2, ch, bob).await, ch);
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_added", "{m}");
    assert_eq!(decode_data(&m)["user_id"], "u2", "{m}");

    // Bob again, from a second tab: no second member_added, and still 2 members.
    let (mut c3, sid3) = server.connect("k").await;
    let ok = sub_presence(&mut c3, &app, &sid3, ch, bob).await;
    assert_succeeded(&ok, ch);
    let p = presence_of(&ok);
    assert_eq!(p["count"], 2, "same user twice is one member: {ok}");
    assert_eq!(p["ids"].as_array().map(Vec::len), Some(2), "{ok}");
    c1.expect_silence(Duration::from_millis(400)).await;
    c2.expect_silence(Duration::from_millis(100)).await;

    // Bob's first tab leaves by unsubscribing: Bob is still there.
    c2.send(json!({"event": "pusher:unsubscribe", "data": {"channel": ch}}))
        .await;
    sync(&mut c2).await;
    c1.expect_silence(Duration::from_millis(400)).await;

    // Bob's last tab drops: now member_removed, once.
    drop(c3);
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_removed", "{m}");
    assert_eq!(m["channel"], ch, "{m}");
    assert!(
        m["data"].is_string(),
        "member_removed data must be a string: {m}"
    );
    assert_eq!(decode_data(&m), json!({"user_id": "u2"}), "{m}");
    c1.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_member_removed_on_unsubscribe_of_last_connection() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-lobby";
    let (mut c1, sid1) = server.connect("k").await;
    sub_presence(&mut c1, &app, &sid1, ch, r#"{"user_id":"u1"}"#).await;
    let (mut c2, sid2) = server.connect("k").await;
    sub_presence(&mut c2, &app, &sid2, ch, r#"{"user_id":"u2"}"#).await;
    assert_eq!(c1.recv().await["event"], "pusher_internal:member_added");

    c2.send(json!({"event": "pusher:unsubscribe", "data": {"channel": ch}}))
        .await;
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_removed", "{m}");
    assert_eq!(decode_data(&m), json!({"user_id": "u2"}), "{m}");
    // The one who left gets nothing about itself.
    sync(&mut c2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_numeric_user_id_stays_a_number() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-nums";
    let (mut c1, sid1) = server.connect("k").await;
    let ok = sub_presence(
        &mut c1,
        &app,
        &sid1,
        ch,
        r#"{"user_id":42,"user_info":{"n":1}}"#,
    )
    .await;
    let p = presence_of(&ok);
    assert_eq!(p["ids"], json!([42]), "numeric id must stay a number: {ok}");
    assert_eq!(
        p["hash"],
        json!({"42": {"n": 1}}),
        "hash key is the string form: {ok}"
    );

    let (mut c2, sid2) = server.connect("k").await;
    let ok = sub_presence(
        &mut c2,
        &app,
        &sid2,
        ch,
        r#"{"user_id":7,"user_info":{"n":2}}"#,
    )
    .await;
    let p = presence_of(&ok);
    let mut ids: Vec<i64> = p["ids"]
        .as_array()
        .expect("ids array")
        .iter()
        .map(|v| v.as_i64().expect("ids stay numbers"))
        .collect();
    ids.sort();
    assert_eq!(ids, [7, 42], "{ok}");
    assert_eq!(p["hash"], json!({"42": {"n": 1}, "7": {"n": 2}}), "{ok}");

    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_added", "{m}");
    assert_eq!(
        decode_data(&m),
        json!({"user_id": 7, "user_info": {"n": 2}}),
        "{m}"
    );

    drop(c2);
    let m = c1.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_removed", "{m}");
    assert_eq!(decode_data(&m), json!({"user_id": 7}), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_hash_is_always_an_object() {
    // An empty member list cannot be seen over the WebSocket (the subscriber is always in it),
    // so this checks the case that makes PHP servers emit `[]`: a numeric id 0, no user_info.
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-zero";
    let (mut c, sid) = server.connect("k").await;
    let ok = sub_presence(&mut c, &app, &sid, ch, r#"{"user_id":0}"#).await;
    let p = presence_of(&ok);
    assert!(p["hash"].is_object(), "hash must be an object: {ok}");
    assert!(
        p["hash"].get("0").is_some(),
        "hash key \"0\" expected: {ok}"
    );
    assert_eq!(p["ids"], json!([0]), "{ok}");
    assert_eq!(p["count"], 1, "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_member_limit_is_limit_reached_4004_but_same_user_may_add_connections() {
    let server = TestServer::start(&config("", "max_presence_members_per_channel = 1")).await;
    let app = app1();
    let ch = "presence-tiny";
    let (mut c1, sid1) = server.connect("k").await;
    assert_succeeded(
        &sub_presence(&mut c1, &app, &sid1, ch, r#"{"user_id":"u1"}"#).await,
        ch,
    );

    let (mut c2, sid2) = server.connect("k").await;
    let m = sub_presence(&mut c2, &app, &sid2, ch, r#"{"user_id":"u2"}"#).await;
    assert_sub_error(&m, ch, "LimitReached", 4004);
    // Nobody was told about u2.
    c1.expect_silence(Duration::from_millis(300)).await;
    // c2 is still usable.
    assert_succeeded(
        &c2.subscribe("public-ok", Some(""), None).await,
        "public-ok",
    );

    // u1 from another connection is not a new member.
    let (mut c3, sid3) = server.connect("k").await;
    let ok = sub_presence(&mut c3, &app, &sid3, ch, r#"{"user_id":"u1"}"#).await;
    assert_succeeded(&ok, ch);
    assert_eq!(presence_of(&ok)["count"], 1, "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_member_data_too_big_is_limit_reached_4301() {
    let server = TestServer::start(&config("", "max_presence_member_size = 100")).await;
    let app = app1();
    let ch = "presence-big";
    let (mut c, sid) = server.connect("k").await;
    let big = json!({"user_id": "u1", "user_info": {"bio": "b".repeat(200)}}).to_string();
    let m = sub_presence(&mut c, &app, &sid, ch, &big).await;
    assert_sub_error(&m, ch, "LimitReached", 4301);
    // Small data on the same connection is fine.
    let ok = sub_presence(
        &mut c,
        &app,
        &sid,
        ch,
        r#"{"user_id":"u1","user_info":{"bio":"b"}}"#,
    )
    .await;
    assert_succeeded(&ok, ch);
}

/// A signed-in connection may join a presence channel without `channel_data`: the member is
/// the signed-in user (its `id` and `user_info`), and the signature covers `socket_id:channel`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_without_channel_data_uses_the_signed_in_user() {
    let server = TestServer::start(&config("", "")).await;
    let app = app1();
    let ch = "presence-desk";
    let (mut watcher, wsid) = server.connect("k").await;
    join_presence(&mut watcher, &app, &wsid, ch, r#"{"user_id":"w"}"#).await;

    let (mut c, sid) = server.connect("k").await;
    signin_ok(
        &mut c,
        &app,
        &sid,
        r#"{"id":"ann","user_info":{"name":"Ann"}}"#,
    )
    .await;
    let auth = channel_auth(&app, &sid, ch, None);
    let ok = c.subscribe(ch, Some(&auth), None).await;
    assert_succeeded(&ok, ch);
    let p = presence_of(&ok);
    assert_eq!(p["count"], 2, "{ok}");
    assert_eq!(p["hash"]["ann"], json!({"name": "Ann"}), "{ok}");
    let m = watcher.recv().await;
    assert_eq!(m["event"], "pusher_internal:member_added", "{m}");
    assert_eq!(
        decode_data(&m),
        json!({"user_id": "ann", "user_info": {"name": "Ann"}}),
        "{m}"
    );

    // Without a sign-in, the same subscribe is refused (there is no user to add).
    let (mut stranger, ssid) = server.connect("k").await;
    let auth = channel_auth(&app, &ssid, ch, None);
    let m = stranger.subscribe(ch, Some(&auth), None).await;
    assert_sub_error(&m, ch, "AuthError", 401);
}
