//! `POST /apps/{id}/batch_events`: several events in one request, all or nothing.

use super::*;

async fn batch(server: &TestServer, app: &TestApp, body: &Value) -> (u16, Value) {
    let path = format!("/apps/{}/batch_events", app.id);
    server.api(app, "POST", &path, &[], &body.to_string()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_delivers_every_event_and_returns_empty_object() {
    let server = TestServer::start(ONE_APP).await;
    let (mut a, _) = public_sub(&server, "k", "a").await;
    let (mut b, _) = public_sub(&server, "k", "b").await;
    let (status, resp) = batch(
        &server,
        &app1(),
        &json!({"batch": [
            {"name": "e1", "channel": "a", "data": "1"},
            {"name": "e2", "channel": "b", "data": "2"},
            {"name": "e3", "channel": "a", "data": "3"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({}));
    let m = next_is(&mut a, "e1").await;
    assert_eq!(m["data"], "1");
    let m = next_is(&mut a, "e3").await;
    assert_eq!(m["data"], "3");
    let m = next_is(&mut b, "e2").await;
    assert_eq!(
        (m["channel"].clone(), m["data"].clone()),
        (json!("b"), json!("2"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_info_is_index_aligned() {
    let server = TestServer::start(ONE_APP).await;
    let app = app1();
    let (_p1, _) = public_sub(&server, "k", "pub").await;
    let (_p2, _) = public_sub(&server, "k", "pub").await;
    let (_m1, _) = presence_sub(&server, &app, "presence-x", &member(json!(1))).await;
    let (_m2, _) = presence_sub(&server, &app, "presence-x", &member(json!(1))).await;
    let (status, resp) = batch(
        &server,
        &app,
        &json!({"batch": [
            {"name": "e", "channel": "pub", "data": "x"},
            {"name": "e", "channel": "pub", "data": "x", "info": "subscription_count"},
            {"name": "e", "channel": "presence-x", "data": "x", "info": "subscription_count,user_count"},
            {"name": "e", "channel": "pub", "data": "x", "info": "user_count"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp,
        json!({"batch": [
            {},
            {"subscription_count": 2},
            {"subscription_count": 2, "user_count": 1},
            {}
        ]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_over_max_event_batch_size_is_400_and_delivers_nothing() {
    let server =
        TestServer::start("[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\nmax_event_batch_size=2\n")
            .await;
    let (mut a, _) = public_sub(&server, "k", "a").await;
    let (status, resp) = batch(
        &server,
        &app1(),
        &json!({"batch": [
            {"name": "e1", "channel": "a", "data": "1"},
            {"name": "e2", "channel": "a", "data": "2"},
            {"name": "e3", "channel": "a", "data": "3"}
        ]}),
    )
    .await;
    assert_error(status, &resp, 400);
    let (status, resp) = batch(
        &server,
        &app1(),
        &json!({"batch": [
            {"name": "ok1", "channel": "a", "data": "1"},
            {"name": "ok2", "channel": "a", "data": "2"}
        ]}),
    )
    .await;
    assert_eq!((status, resp), (200, json!({})));
    next_is(&mut a, "ok1").await;
    next_is(&mut a, "ok2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_one_invalid_item_is_400_and_delivers_nothing() {
    let server = TestServer::start(ONE_APP).await;
    let (mut a, _) = public_sub(&server, "k", "a").await;
    let bad_items = [
        json!({"name": "bad", "channel": "no space allowed", "data": "x"}),
        json!({"channel": "a", "data": "x"}),
        json!({"name": "bad", "channel": "a"}),
        json!({"name": "bad", "channel": "a", "data": "x".repeat(10 * 1024 + 1)}),
    ];
    for bad in bad_items {
        let (status, resp) = batch(
            &server,
            &app1(),
            &json!({"batch": [
                {"name": "first", "channel": "a", "data": "1"},
                bad,
                {"name": "third", "channel": "a", "data": "3"}
            ]}),
        )
        .await;
        assert!(
            status == 400 || status == 413,
            "status {status} for an invalid item: {resp}"
        );
        assert_error(status, &resp, status);
    }
    let (status, _) = post_events(
        &server,
        &app1(),
        &json!({"name": "marker", "channel": "a", "data": "m"}),
    )
    .await;
    assert_eq!(status, 200);
    next_is(&mut a, "marker").await;
}
