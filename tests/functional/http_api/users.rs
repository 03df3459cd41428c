//! The users of a channel (`GET /apps/{id}/channels/{channel}/users`) and
//! `POST /apps/{id}/users/{user_id}/terminate_connections`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_users_lists_distinct_presence_users() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (_a, _) = presence_sub(&server, &app, "presence-u", &member(json!("1"))).await;
    let (_b, _) = presence_sub(&server, &app, "presence-u", &member(json!("1"))).await;
    let (_c, _) = presence_sub(&server, &app, "presence-u", &member(json!("2"))).await;
    let (status, resp) = get(&server, &app, "/apps/1/channels/presence-u/users", &[]).await;
    assert_eq!(status, 200, "{resp}");
    let mut ids: Vec<String> = resp["users"]
        .as_array()
        .unwrap_or_else(|| panic!("users array: {resp}"))
        .iter()
        .map(|u| {
            assert_eq!(u.as_object().map(|o| o.len()), Some(1), "{u}");
            u["id"].as_str().expect("string id").to_string()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["1", "2"]);
    let (status, resp) = get(&server, &app, "/apps/1/channels/presence-none/users", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(resp, json!({"users": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_users_on_non_presence_channel_is_400() {
    let server = TestServer::start(ONE_APP).await;
    let (_a, _) = public_sub(&server, "k", "pub").await;
    for ch in ["pub", "private-x", "cache-x"] {
        let (status, resp) = get(
            &server,
            &app1(),
            &format!("/apps/1/channels/{ch}/users"),
            &[],
        )
        .await;
        assert_error(status, &resp, 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_connections_closes_signed_in_user_only() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (mut signed7, sid) = server.connect("k").await;
    signin_ok(&mut signed7, &app, &sid, r#"{"id":"7"}"#).await;
    let (mut signed7b, sid) = server.connect("k").await;
    signin_ok(
        &mut signed7b,
        &app,
        &sid,
        r#"{"id":"7","user_info":{"x":1}}"#,
    )
    .await;
    let (mut signed8, sid) = server.connect("k").await;
    signin_ok(&mut signed8, &app, &sid, r#"{"id":"8"}"#).await;
    let (mut member7, _) = presence_sub(&server, &app, "presence-t", &member(json!("7"))).await;
    let (mut member7n, _) = presence_sub(&server, &app, "presence-t", &member(json!(7))).await;

    let (status, resp) = terminate_user(&server, &app, "7").await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({}));
    match signed7.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4009),
        other => panic!("expected close 4009, got {other:?}"),
    }
    match signed7b.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4009),
        other => panic!("expected close 4009, got {other:?}"),
    }
    sync(&mut signed8).await;
    sync(&mut member7).await;
    sync(&mut member7n).await;

    // Unknown user: still {}.
    let (status, resp) = terminate_user(&server, &app, "nobody").await;
    assert_eq!((status, resp), (200, json!({})));
}
