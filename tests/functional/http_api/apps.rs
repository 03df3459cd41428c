//! The app in the path: unknown (404), disabled (403), and apps isolated from each other.

use super::*;

fn app2() -> TestApp {
    TestApp::new("2", "k2", "s2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_app_id_is_404() {
    let server = TestServer::start(ONE_APP).await;
    let ghost = TestApp::new("999", "k", "s");
    let (status, resp) = get(&server, &ghost, "/apps/999/channels", &[]).await;
    assert_error(status, &resp, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_app_is_403() {
    let server =
        TestServer::start("[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\nenabled=false\n").await;
    let (status, resp) = get(&server, &app1(), "/apps/1/channels", &[]).await;
    assert_error(status, &resp, 403);
    let (status, resp) = post_events(
        &server,
        &app1(),
        &json!({"name": "e", "channel": "c", "data": "x"}),
    )
    .await;
    assert_error(status, &resp, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_isolated() {
    let server = TestServer::start(TWO_APPS).await;
    let a = app1();
    let b = app2();
    let (mut in_a, _) = public_sub(&server, "k", "shared").await;
    let (_only_a, _) = public_sub(&server, "k", "only-a").await;

    // A's credentials on B's paths.
    let a_on_b = TestApp::new("2", "k", "s");
    let (status, resp) = post_events(
        &server,
        &a_on_b,
        &json!({"name": "e", "channel": "shared", "data": "x"}),
    )
    .await;
    assert_error(status, &resp, 401);
    let (status, resp) = get(&server, &a_on_b, "/apps/2/channels", &[]).await;
    assert_error(status, &resp, 401);

    // B sees none of A's channels.
    let (status, resp) = get(&server, &b, "/apps/2/channels", &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp, json!({"channels": {}}));
    let (status, resp) = get(&server, &b, "/apps/2/channels/shared", &[]).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["occupied"], false);

    // A trigger on B's "shared" does not reach A's "shared".
    let (status, _) = post_events(
        &server,
        &b,
        &json!({"name": "from-b", "channel": "shared", "data": "x"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post_events(
        &server,
        &a,
        &json!({"name": "from-a", "channel": "shared", "data": "x"}),
    )
    .await;
    assert_eq!(status, 200);
    next_is(&mut in_a, "from-a").await;
}
