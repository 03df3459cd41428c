//! `clarion trigger`, `clarion channels`, `clarion channel`, `clarion users`, `clarion history`
//! against a live server.

use crate::common::*;

use std::process::{Command, Output};

use serde_json::{json, Value};

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

/// Runs the binary with the server's URL and credentials in the environment.
async fn clarion(server: &TestServer, secret: &str, args: &[&str]) -> Output {
    let url = format!("http://{}", server.addr);
    let secret = secret.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_clarion"))
            .args(&args)
            .env("CLARION_URL", url)
            .env("CLARION_APP_ID", "1")
            .env("CLARION_APP_KEY", "k")
            .env("CLARION_APP_SECRET", secret)
            .output()
            .expect("run clarion")
    })
    .await
    .expect("join")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("JSON on stdout: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_delivers_and_excludes_and_batches() {
    let server = TestServer::start(APP).await;
    let (mut a, a_sid) = server.connect("k").await;
    let (mut b, _) = server.connect("k").await;
    a.subscribe("orders", Some(""), None).await;
    b.subscribe("orders", Some(""), None).await;

    let out = clarion(
        &server,
        "s",
        &[
            "trigger",
            "--channel",
            "orders",
            "--event",
            "created",
            "--data",
            "{\"id\":1}",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout_json(&out), json!({}));
    for c in [&mut a, &mut b] {
        let m = c.expect_event("created").await;
        assert_eq!(m["data"], "{\"id\":1}");
    }

    // --socket-id excludes that connection (toOthers).
    let out = clarion(
        &server,
        "s",
        &[
            "trigger",
            "--channels",
            "orders,other",
            "--event",
            "second",
            "--socket-id",
            &a_sid,
        ],
    )
    .await;
    assert!(out.status.success());
    b.expect_event("second").await;
    a.expect_silence(std::time::Duration::from_millis(300))
        .await;

    // --batch FILE with info on one item.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("batch.json");
    std::fs::write(
        &file,
        json!([{"name": "b1", "channel": "orders", "data": "{}"}, {"name": "b2", "channel": "orders", "data": "{}", "info": "subscription_count"}]).to_string(),
    )
    .expect("write");
    let out = clarion(
        &server,
        "s",
        &["trigger", "--batch", file.to_str().expect("utf-8")],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout_json(&out),
        json!({"batch": [{}, {"subscription_count": 2}]})
    );
    a.expect_event("b1").await;
    a.expect_event("b2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_non_zero_with_the_servers_message() {
    let server = TestServer::start(APP).await;
    let out = clarion(
        &server,
        "wrong",
        &["trigger", "--channel", "orders", "--event", "x"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("Invalid signature"),
        "{err}"
    );
    let out = clarion(&server, "s", &["users", "orders"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a presence channel"));
    let out = clarion(&server, "s", &["trigger", "--event", "x"]).await;
    assert_eq!(out.status.code(), Some(1), "no channel given");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_print_the_servers_answer() {
    let server = TestServer::start(APP).await;
    let app = TestApp::new("1", "k", "s");
    let (mut c, sid) = server.connect("k").await;
    let data = json!({"user_id": "7"}).to_string();
    let auth = channel_auth(&app, &sid, "presence-room", Some(&data));
    c.subscribe("presence-room", Some(&auth), Some(&data)).await;

    let out = clarion(
        &server,
        "s",
        &["channels", "--prefix", "presence-", "--info", "user_count"],
    )
    .await;
    assert_eq!(
        stdout_json(&out),
        json!({"channels": {"presence-room": {"user_count": 1}}})
    );
    let out = clarion(
        &server,
        "s",
        &[
            "channel",
            "presence-room",
            "--info",
            "subscription_count,user_count",
        ],
    )
    .await;
    assert_eq!(
        stdout_json(&out),
        json!({"occupied": true, "subscription_count": 1, "user_count": 1})
    );
    let out = clarion(&server, "s", &["users", "presence-room"]).await;
    assert_eq!(stdout_json(&out), json!({"users": [{"id": "7"}]}));
}

/// `clarion history CHANNEL` reads a recorded channel's history; `--purge` forgets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_and_purges_a_recorded_channel() {
    let server = TestServer::start(&format!(
        "{APP}[[apps.recovery]]\nchannels = [\"orders\"]\n"
    ))
    .await;
    let app = TestApp::new("1", "k", "s");
    trigger(&server, &app, "orders", "created", "{\"id\":1}").await;
    trigger(&server, &app, "orders", "created", "{\"id\":2}").await;
    let out = clarion(&server, "s", &["history", "orders", "--after", "1"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = stdout_json(&out);
    assert_eq!(page["top"], 2, "{page}");
    assert_eq!(page["items"][0]["data"], "{\"id\":2}", "{page}");
    let epoch = page["epoch"].clone();

    let out = clarion(&server, "s", &["history", "orders", "--purge"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = clarion(&server, "s", &["history", "orders", "--limit", "0"]).await;
    let head = stdout_json(&out);
    assert_eq!(head["top"], 0, "{head}");
    assert_ne!(head["epoch"], epoch, "a purge starts a new epoch");

    let out = clarion(&server, "s", &["history", "not-recorded"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("keeps no history"));
}
