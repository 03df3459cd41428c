//! SECURITY.md 1, "A key of app A cannot trigger, read, terminate or subscribe in app B": apps
//! sharing one server never reach into each other, on any API endpoint or WebSocket path.

use super::*;

/// An API request: method, path, extra query parameters, body.
type ApiCall<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

/// The three ways of holding the wrong credentials for app B: A's key and secret, A's key with
/// B's secret, B's key with A's secret. Each is addressed to B (`id` = B's id).
fn foreign_credentials_for_b() -> Vec<(&'static str, TestApp)> {
    vec![
        (
            "A's key and secret",
            TestApp::new("app-b", "key-a", "secret-a"),
        ),
        (
            "A's key, B's secret",
            TestApp::new("app-b", "key-a", "secret-b"),
        ),
        (
            "B's key, A's secret",
            TestApp::new("app-b", "key-b", "secret-a"),
        ),
    ]
}

/// Every HTTP API endpoint of app B refuses A's credentials, A's key with B's secret and B's
/// key with A's secret: 401 with only a JSON error, and nothing happens to B (no event reaches
/// B's subscribers, B's signed-in user stays connected, B's presence member stays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_credentials_are_refused_on_every_api_endpoint_of_another_app() {
    let server = TestServer::start(TWO_APPS).await;
    let b = app_b();
    let (mut b_sub, b_sid) = server.connect("key-b").await;
    assert_succeeded(&b_sub.subscribe("shared", Some(""), None).await, "shared");
    join_presence(
        &mut b_sub,
        &b,
        &b_sid,
        "presence-room",
        r#"{"user_id":"b1"}"#,
    )
    .await;
    signin_ok(&mut b_sub, &b, &b_sid, r#"{"id":"7"}"#).await;

    let trigger_body = json!({"name": "leak", "channel": "shared", "data": "x"}).to_string();
    let batch_body =
        json!({"batch": [{"name": "leak", "channel": "shared", "data": "x"}]}).to_string();
    let requests: [ApiCall; 7] = [
        ("POST", "/apps/app-b/events", &[], &trigger_body),
        ("POST", "/apps/app-b/batch_events", &[], &batch_body),
        ("GET", "/apps/app-b/channels", &[], ""),
        (
            "GET",
            "/apps/app-b/channels/presence-room",
            &[("info", "user_count,subscription_count")],
            "",
        ),
        ("GET", "/apps/app-b/channels/presence-room/users", &[], ""),
        (
            "POST",
            "/apps/app-b/users/7/terminate_connections",
            &[],
            "{}",
        ),
        ("GET", "/apps/app-b/connections", &[], ""),
    ];
    for (who, creds) in foreign_credentials_for_b() {
        for (method, path, extra, body) in requests {
            let (status, resp) = server.api(&creds, method, path, extra, body).await;
            assert_401_json(&format!("{who}: {method} {path}"), status, &resp);
        }
    }

    // Nothing reached B's subscriber, and it is still connected (not terminated).
    assert_nothing_queued(&mut b_sub, "B's subscriber").await;
    // B's member is still there, and B's own credentials work on the same requests (so the
    // refusals above were about the credentials, not about the requests).
    assert_eq!(api_users(&server, &b, "presence-room").await, ["b1"]);
    for (method, path, extra, body) in requests {
        let (status, resp) = server.api(&b, method, path, extra, body).await;
        assert_eq!(status, 200, "B's own {method} {path}: {resp}");
    }
}

/// A channel authorization or a user sign-in signed for app A (or with A's key or secret) is
/// refused on a connection of app B, for private, encrypted and presence channels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_and_user_signatures_of_one_app_are_refused_by_another() {
    let server = TestServer::start(TWO_APPS).await;
    let b = app_b();
    let (mut c, sid) = server.connect("key-b").await;
    let member = r#"{"user_id":"mallory"}"#;
    for (who, creds) in foreign_credentials_for_b() {
        for ch in ["private-x", "private-encrypted-x", "private-cache-x"] {
            let auth = channel_auth(&creds, &sid, ch, None);
            assert_auth_error(who, &c.subscribe(ch, Some(&auth), None).await, ch);
        }
        let auth = channel_auth(&creds, &sid, "presence-x", Some(member));
        let m = c.subscribe("presence-x", Some(&auth), Some(member)).await;
        assert_auth_error(who, &m, "presence-x");

        let m = signin(&mut c, &creds, &sid, r#"{"id":"mallory"}"#).await;
        assert_eq!(
            m["event"], "pusher:error",
            "{who}: sign-in must be refused: {m}"
        );
        assert_eq!(decode_data(&m)["code"], 4009, "{who}: {m}");
        // Not signed in: the user channel stays closed.
        let m = c.subscribe("#server-to-user-mallory", Some(""), None).await;
        assert_auth_error(who, &m, "#server-to-user-mallory");
    }
    // None of those subscriptions exists: B's events do not reach the connection.
    for ch in [
        "private-x",
        "private-encrypted-x",
        "private-cache-x",
        "presence-x",
    ] {
        trigger(&server, &b, ch, "leak", "{}").await;
    }
    assert_nothing_queued(&mut c, "a connection with refused subscriptions").await;
    assert!(api_users(&server, &b, "presence-x").await.is_empty());

    // With B's own credentials the same requests succeed.
    join_private(&mut c, &b, &sid, "private-x").await;
    join_presence(&mut c, &b, &sid, "presence-x", member).await;
    signin_ok(&mut c, &b, &sid, r#"{"id":"mallory"}"#).await;
}

/// Apps sharing channel names never see each other's private, presence, user-channel or client
/// events, presence members or terminations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_presence_user_and_client_events_never_cross_apps() {
    let server = TestServer::start(TWO_APPS).await;
    let (a, b) = (app_a(), app_b());
    // One "listener" per app on every channel kind, signed in as user 7; one "sender" per app.
    let mut listeners = Vec::new();
    let mut senders = Vec::new();
    for (app, member) in [(&a, "a-member"), (&b, "b-member")] {
        let (mut l, sid) = server.connect(&app.key).await;
        signin_ok(&mut l, app, &sid, r#"{"id":"7"}"#).await;
        let m = l.subscribe("#server-to-user-7", Some(""), None).await;
        assert_succeeded(&m, "#server-to-user-7");
        join_private(&mut l, app, &sid, "private-room").await;
        let data = json!({"user_id": member}).to_string();
        let joined = join_presence(&mut l, app, &sid, "presence-room", &data).await;
        assert_eq!(presence_ids(&joined), [member], "{joined}");
        listeners.push(l);

        let (mut s, sid) = server.connect(&app.key).await;
        join_private(&mut s, app, &sid, "private-room").await;
        let data = json!({"user_id": format!("{member}-2")}).to_string();
        let joined = join_presence(&mut s, app, &sid, "presence-room", &data).await;
        assert_eq!(
            presence_ids(&joined),
            [member.to_string(), format!("{member}-2")],
            "only the same app's members are listed: {joined}"
        );
        senders.push(s);
    }
    let (mut la, mut lb) = {
        let mut it = listeners.into_iter();
        (it.next().expect("a"), it.next().expect("b"))
    };
    let m = next_is_on(&mut la, "pusher_internal:member_added", "presence-room").await;
    assert_eq!(decode_data(&m)["user_id"], "a-member-2");
    let m = next_is_on(&mut lb, "pusher_internal:member_added", "presence-room").await;
    assert_eq!(decode_data(&m)["user_id"], "b-member-2");
    assert_eq!(
        api_users(&server, &b, "presence-room").await,
        ["b-member", "b-member-2"]
    );

    // A's triggers on every kind reach A's listener only.
    for ch in ["private-room", "presence-room", "#server-to-user-7"] {
        trigger(&server, &a, ch, "from-a", "{}").await;
        next_is_on(&mut la, "from-a", ch).await;
    }
    // A's client events reach A's listener only.
    for ch in ["private-room", "presence-room"] {
        senders[0]
            .send(json!({"event": "client-from-a", "channel": ch, "data": {}}))
            .await;
        next_is_on(&mut la, "client-from-a", ch).await;
    }
    assert_nothing_queued(&mut lb, "B's listener").await;
    assert_nothing_queued(&mut senders[1], "B's sender").await;

    // B terminates its user 7: B's connection closes, A's user 7 stays.
    let (status, resp) = terminate_user(&server, &b, "7").await;
    assert_eq!((status, resp), (200, json!({})));
    match lb.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4009, "B's user 7 is terminated"),
        other => panic!("B's user 7 must be closed with 4009, got {other:?}"),
    }
    assert_nothing_queued(&mut la, "A's user 7 after B's termination").await;
}
