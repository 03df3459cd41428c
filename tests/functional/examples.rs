//! The shell example `examples/scripts/trigger.sh` against a real server: it signs and sends an
//! event with nothing but bash, curl and openssl, and reports the server's refusal.

use crate::common::*;

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
