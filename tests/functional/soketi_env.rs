//! A Soketi deployment's environment, unchanged (docs/migrating.md): the real binary started
//! with `SOKETI_*` variables serves Soketi's default app, says which variables it took, warns
//! about the ones it does not support, and lets its own flags win.

use std::time::Duration;

use crate::common::binary::{clarion, Captured};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soketi_variables_start_the_default_app() {
    let mut cmd = clarion("info");
    cmd.args(["--host", "127.0.0.1", "--port", "0", "--metrics-port", "0"])
        .env("SOKETI_DEFAULT_APP_ID", "soketi-id")
        .env("SOKETI_DEFAULT_APP_KEY", "soketi-key")
        .env("SOKETI_DEFAULT_APP_SECRET", "Soketi_Secret_9")
        .env("SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES", "true")
        .env("SOKETI_PORT", "1") // the --port flag wins
        .env("SOKETI_DEBUG", "1");
    let mut server = Captured::spawn(cmd);
    let addr = server
        .wait_listening(Duration::from_secs(10))
        .expect("listening: the flag's port, not SOKETI_PORT's");
    let app = TestApp::new("soketi-id", "soketi-key", "Soketi_Secret_9");
    let (status, body) = api_at(addr, &app, "GET", "/apps/soketi-id/channels", &[], "").await;
    assert_eq!(status, 200, "{body}");
    let (mut a, sid_a) = connect_at(addr, "soketi-key").await;
    let (mut b, sid_b) = connect_at(addr, "soketi-key").await;
    join_private(&mut a, &app, &sid_a, "private-chat").await;
    join_private(&mut b, &app, &sid_b, "private-chat").await;
    a.send(serde_json::json!({"event": "client-whisper", "channel": "private-chat", "data": {}}))
        .await;
    b.expect_event("client-whisper").await;
    let log = server.stop(Duration::from_secs(10));
    assert!(log.contains("taken from the Soketi environment"), "{log}");
    assert!(
        log.contains("SOKETI_DEFAULT_APP_ID") && log.contains("SOKETI_PORT"),
        "{log}"
    );
    assert!(
        log.contains("SOKETI_DEBUG") && log.contains("RUST_LOG=debug"),
        "{log}"
    );
    assert!(
        !log.contains("Soketi_Secret_9"),
        "the secret stays out of the log: {log}"
    );
}
