//! The examples against a real server: the shell example `examples/scripts/trigger.sh` signs and
//! sends an event with nothing but bash, curl and openssl, and reports the server's refusal; the
//! Clarion configs of the marketplace (`examples/laravel/clarion.toml`) and of the browser page
//! (`examples/browser/clarion.toml`) start and switch on what their pages use: watchlist events
//! and the subscription count. (The browser page itself is driven in Chromium by
//! `protocol-tests/tests/browser.test.mjs`.)

use crate::common::*;

use serde_json::json;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const APP: &str = r#"
[[apps]]
id = "examples-app"
key = "examples-key"
secret = "examples-secret"
"#;

/// Runs `bash examples/scripts/trigger.sh ARGS…` against `server` with the given secret.
async fn trigger_sh(server: &TestServer, secret: &str, args: &[&str]) -> Output {
    let url = format!("http://{}", server.addr);
    let secret = secret.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg("examples/scripts/trigger.sh")
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CLARION_URL", url)
            .env("CLARION_APP_ID", "examples-app")
            .env("CLARION_APP_KEY", "examples-key")
            .env("CLARION_APP_SECRET", secret)
            .stdin(Stdio::null())
            .output()
            .expect("run bash examples/scripts/trigger.sh")
    })
    .await
    .expect("the script's thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_sh_publishes_a_signed_event_and_reports_a_refusal() {
    let server = TestServer::start(APP).await;
    let (mut c, _sid) = server.connect("examples-key").await;
    let ok = c.subscribe("orders", None, None).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );

    let data = r#"{"id":1,"note":"a \"quoted\" text"}"#;
    let out = trigger_sh(&server, "examples-secret", &["orders", "created", data]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status.code()
    );
    assert_eq!(stdout.trim(), "{}", "stderr: {stderr}");
    let m = c.expect_event("created").await;
    assert_eq!(m["channel"], "orders");
    assert_eq!(m["data"], data, "the data string arrives byte for byte");

    let out = trigger_sh(&server, "wrong-secret", &["orders", "created", data]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a wrong secret must fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("Invalid signature"),
        "stderr: {stderr}"
    );
    c.expect_silence(Duration::from_millis(300)).await;
}

/// A server started from an example's Clarion config (host and port forced to a free one).
async fn example_server(path: &str) -> TestServer {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let toml = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {path}: {e}"));
    TestServer::start(&toml).await
}

/// What a page of the example relies on: a watcher signed in with `watchlist` (as the example's
/// user-auth endpoint signs it) hears who of them is offline at sign-in and then `watched`
/// coming online; a subscriber of `public` gets the subscription count.
async fn check_example_features(
    path: &str,
    watchlist: serde_json::Value,
    watched: &str,
    public: &str,
) {
    let server = example_server(path).await;
    let app = TestApp::dev();
    let (mut watcher, sid) = server.connect(&app.key).await;
    let user_data = json!({"id": "1", "name": "watcher", "watchlist": watchlist}).to_string();
    watcher.sign_in(&app, &sid, &user_data).await;
    let m = watcher
        .expect_event("pusher_internal:watchlist_events")
        .await;
    let ids: Vec<String> = watchlist
        .as_array()
        .expect("a list")
        .iter()
        .map(|id| id.to_string().trim_matches('"').to_string())
        .collect();
    assert_eq!(
        decode_data(&m),
        json!({"events": [{"name": "offline", "user_ids": ids}]}),
        "{path}: {m}"
    );

    let (mut user, usid) = server.connect(&app.key).await;
    let user_data = json!({"id": watched, "name": watched}).to_string();
    user.sign_in(&app, &usid, &user_data).await;
    let m = watcher
        .expect_event("pusher_internal:watchlist_events")
        .await;
    assert_eq!(
        decode_data(&m),
        json!({"events": [{"name": "online", "user_ids": [watched]}]}),
        "{path}: {m}"
    );

    let (mut viewer, _) = server.connect(&app.key).await;
    let ok = viewer.subscribe(public, None, None).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
    let m = viewer
        .expect_event("pusher_internal:subscription_count")
        .await;
    assert_eq!(m["channel"], public, "{path}: {m}");
    assert_eq!(
        decode_data(&m),
        json!({"subscription_count": 1}),
        "{path}: {m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marketplace_config_shows_providers_online_and_viewer_counts() {
    // An admin's watchlist as AppServiceProvider.php signs it: provider ids as integers.
    check_example_features(
        "examples/laravel/clarion.toml",
        json!([7, 8]),
        "7",
        "service.3",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_example_config_shows_the_team_online_and_viewer_counts() {
    // alice's watchlist as examples/browser/serve.mjs signs it.
    check_example_features(
        "examples/browser/clarion.toml",
        json!(["bob", "carol", "dave"]),
        "dave",
        "demo",
    )
    .await;
}
