//! The process lifecycle: graceful shutdown on SIGTERM/SIGINT, a second signal, `/ready`.

use crate::common::process::Process;
use crate::common::receiver::Receiver;
use crate::common::*;

use std::process::Command;
use std::time::Duration;

use serde_json::json;

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_connections_with_4200_sends_held_back_webhooks_and_exits_0() {
    let mut rx = Receiver::start(vec![]).await;
    let config = format!(
        "webhook_delay_ms = 60000\n{APP}[[apps.webhooks]]\nurl = \"{}\"\nevent_types = [\"channel_vacated\"]\n",
        rx.url()
    );
    let mut node = Process::start(&config, &[]).await;
    let (mut stays, _) = node.connect("k").await;
    stays.subscribe("lobby", Some(""), None).await;
    let (mut leaves, _) = node.connect("k").await;
    leaves.subscribe("room", Some(""), None).await;
    leaves
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": "room"}}))
        .await;
    // channel_vacated for "room" is held back for a minute; shutdown must not lose it.
    rx.nothing(Duration::from_millis(300)).await;

    node.signal(libc::SIGTERM);
    assert_eq!(
        stays.closed().await,
        Closed::Code(4200, "Server shutting down".into())
    );
    assert_eq!(
        leaves.closed().await,
        Closed::Code(4200, "Server shutting down".into())
    );
    assert_eq!(rx.next_sorted(2, "channel").await, vec!["lobby", "room"]);
    assert_eq!(node.wait_exit(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_draining_ready_is_503_and_new_websockets_are_refused_and_a_second_signal_exits() {
    let mut node = Process::start(&format!("shutdown_grace_seconds = 30\n{APP}"), &[]).await;
    // A client that never answers the close handshake keeps the node draining for a while.
    let (_silent, _) = node.connect("k").await;
    assert_eq!(http_request(node.addr, "GET", "/ready", "").await.0, 200);
    node.signal(libc::SIGINT);
    let mut saw_503 = false;
    for _ in 0..40 {
        if http_request(node.addr, "GET", "/ready", "").await.0 == 503 {
            saw_503 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(saw_503, "/ready must answer 503 while draining");
    let (status, body) = http_request(node.addr, "GET", "/app/k", "").await;
    assert_eq!(status, 503, "{body}");
    node.signal(libc::SIGINT);
    assert_eq!(node.wait_exit(Duration::from_secs(3)).await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_apps_and_refuses_a_broken_config() {
    let node = Process::start(APP, &[]).await;
    let path = node.config_path();
    let (mut kept, _) = node.connect("k").await;
    kept.subscribe("news", Some(""), None).await;

    // Add a second app: new clients can use it, the existing connection stays.
    let two = format!("{APP}[[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"s2\"\n");
    std::fs::write(&path, &two).expect("write config");
    node.signal(libc::SIGHUP);
    let url = format!("ws://{}/app/k2?protocol=7", node.addr);
    let mut established = false;
    for _ in 0..40 {
        let mut c = WsClient::connect(&url).await;
        if c.recv().await["event"] == "pusher:connection_established" {
            established = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        established,
        "the added app must accept connections after SIGHUP"
    );

    // A broken file is refused: both apps keep working.
    std::fs::write(&path, "this is = not [valid").expect("write config");
    node.signal(libc::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = WsClient::connect(&url).await;
    assert_eq!(c.recv().await["event"], "pusher:connection_established");
    kept.send(json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(kept.recv().await["event"], "pusher:pong");

    // Disabling app 1 closes its connections with 4003; app 2 is untouched.
    let disabled = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenabled = false\n[[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"s2\"\n";
    std::fs::write(&path, disabled).expect("write config");
    node.signal(libc::SIGHUP);
    assert_eq!(
        kept.closed().await,
        Closed::Code(4003, "Application is disabled".into())
    );
    c.send(json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(c.recv().await["event"], "pusher:pong");
    node.signal(libc::SIGKILL);
}

#[test]
fn check_config_prints_masked_settings_or_names_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "redis_url = \"redis://u:hunter2@127.0.0.1:6379/0\"\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"topsecret\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_clarion"))
        .args(["check-config", good.to_str().expect("utf-8")])
        .env_remove("CLARION_APP_ID")
        .output()
        .expect("run check-config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("valid") && text.contains("key = \"k\""),
        "{text}"
    );
    assert!(
        !text.contains("topsecret") && !text.contains("hunter2"),
        "secrets must be masked: {text}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nmax_conections = 3\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_clarion"))
        .args(["check-config", bad.to_str().expect("utf-8")])
        .output()
        .expect("run check-config");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_conections"));
}
