//! Black-box tests of the `clarion` binary: flags, environment, config files, precedence, and
//! what an operator sees at start. Every child process is owned by a `Captured` guard that kills
//! it on drop, so a failing assertion never leaves a server behind; every wait is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

use crate::common::binary::{config_file, Captured};
/// Upper bound for the server to start (or to fail) and for any single network exchange.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A command for the binary with a clean `CLARION_*` environment and `RUST_LOG=info`.
fn clarion() -> Command {
    crate::common::binary::clarion("info")
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// Runs the binary to completion (it must exit within the start timeout) and returns its exit
/// code and everything it printed.
fn run_to_exit(cmd: Command) -> (Option<i32>, String) {
    let mut running = Captured::spawn(cmd);
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Ok(Some(status)) = running.child.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "clarion did not exit within {START_TIMEOUT:?}; output:\n{}",
            running.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(100));
    (status.code(), running.output())
}

/// `GET path` over plain HTTP/1.1; returns the status code and the body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read response");
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"));
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Starts the binary on a chosen free port with JSON logs and waits until it listens there.
fn start_on(mut cmd: Command, port: u16) -> Captured {
    cmd.args(["--host", "127.0.0.1", "--log-format", "json"]);
    let mut running = Captured::spawn(cmd);
    let addr = running
        .wait_listening(START_TIMEOUT)
        .expect("JSON log has the address");
    assert_eq!(addr.port(), port, "output:\n{}", running.output());
    running
}

/// Connects a WebSocket client to `/app/{key}` and returns the first message, decoded.
async fn first_ws_message(port: u16, key: &str) -> Value {
    let url = format!("ws://127.0.0.1:{port}/app/{key}?protocol=7&client=js&version=8.4.0");
    let (mut ws, _) = tokio::time::timeout(IO_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("websocket handshake");
    let msg = tokio::time::timeout(IO_TIMEOUT, ws.next())
        .await
        .expect("a message in time")
        .expect("stream open")
        .expect("no error");
    serde_json::from_str(msg.to_text().expect("text frame")).expect("JSON message")
}

// ---------------------------------------------------------------------------------------------

#[test]
fn help_lists_every_flag_and_its_variable() {
    let out = clarion().arg("--help").output().expect("run --help");
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--config", "CLARION_CONFIG"),
        ("--host", "CLARION_HOST"),
        ("--port", "CLARION_PORT"),
        ("--path-prefix", "CLARION_PATH_PREFIX"),
        ("--activity-timeout", "CLARION_ACTIVITY_TIMEOUT"),
        ("--pong-timeout", "CLARION_PONG_TIMEOUT"),
        ("--max-message-size", "CLARION_MAX_MESSAGE_SIZE"),
        ("--outbound-queue-size", "CLARION_OUTBOUND_QUEUE_SIZE"),
        ("--max-http-body-size", "CLARION_MAX_HTTP_BODY_SIZE"),
        ("--log-format", "CLARION_LOG_FORMAT"),
        ("--app-id", "CLARION_APP_ID"),
        ("--app-key", "CLARION_APP_KEY"),
        ("--app-secret", "CLARION_APP_SECRET"),
        (
            "--app-enable-client-messages",
            "CLARION_APP_ENABLE_CLIENT_MESSAGES",
        ),
        (
            "--app-enable-user-authentication",
            "CLARION_APP_ENABLE_USER_AUTHENTICATION",
        ),
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
        assert!(help.contains(env), "--help lacks {env}:\n{help}");
    }
}

#[test]
fn unknown_config_key_fails_naming_it() {
    let file = config_file("host = \"127.0.0.1\"\nprot = 5\n");
    let mut cmd = clarion();
    cmd.arg("--config").arg(file.path());
    let (code, out) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("prot"), "{out}");

    let file =
        config_file("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nmax_conections = 1\n");
    let mut cmd = clarion();
    cmd.arg("--config").arg(file.path());
    let (code, out) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("max_conections"), "{out}");
}

#[test]
fn invalid_config_values_fail_naming_the_key() {
    for (toml, key) in [
        (
            "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n\
             [[apps]]\nid = \"2\"\nkey = \"k\"\nsecret = \"s\"\n",
            "apps[1].key",
        ),
        (
            "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n\
             [[apps]]\nid = \"1\"\nkey = \"k2\"\nsecret = \"s\"\n",
            "apps[1].id",
        ),
        (
            "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"\"\n",
            "apps[0].secret",
        ),
        ("activity_timeout = 0\n", "activity_timeout"),
        ("pong_timeout = 0\n", "pong_timeout"),
        ("log_format = \"xml\"\n", "log_format"),
        ("path_prefix = \"ws\"\n", "path_prefix"),
        ("port = \"six\"\n", "port"),
    ] {
        let file = config_file(toml);
        let mut cmd = clarion();
        cmd.arg("--config").arg(file.path());
        let (code, out) = run_to_exit(cmd);
        assert_eq!(code, Some(2), "config {toml:?}: {out}");
        assert!(
            out.contains(key),
            "config {toml:?} should name {key}: {out}"
        );
    }
}

#[test]
fn invalid_flag_values_fail_naming_the_key() {
    let mut cmd = clarion();
    cmd.args(["--activity-timeout", "0"]);
    let (code, out) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("activity_timeout"), "{out}");

    // An app from the environment needs all three of id, key and secret.
    let mut cmd = clarion();
    cmd.env("CLARION_APP_ID", "only-an-id");
    let (code, out) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("CLARION_APP_KEY"), "{out}");
}

#[test]
fn missing_config_file_fails() {
    let mut cmd = clarion();
    cmd.args(["--config", "/nonexistent/clarion.toml"]);
    let (code, out) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("/nonexistent/clarion.toml"), "{out}");
}

/// Every key of `Config` and of `App` (as serialized from their defaults) appears in the example
/// file, and every value the example sets is the default.
#[test]
fn config_example_documents_every_key_with_its_default() {
    use clarion::app::App;
    use clarion::config::Config;

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let text = std::fs::read_to_string(&path).expect("config.example.toml exists");
    let mut config = Config::from_file(&path).expect("config.example.toml parses");
    config.finish().expect("config.example.toml validates");
    assert!(!config.using_development_app);
    assert_eq!(config.apps.len(), 1, "one example app");

    let sets = |key: &str| {
        text.lines().any(|l| {
            let l = l.trim_start().trim_start_matches('#').trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    };
    let server = toml::Value::try_from(Config::default()).expect("Config serializes");
    let server = server.as_table().expect("a table");
    for key in server.keys().filter(|k| *k != "apps") {
        assert!(sets(key), "config.example.toml does not document {key}");
    }
    let app = toml::Value::try_from(App::default()).expect("App serializes");
    let app = app.as_table().expect("a table");
    assert!(app.len() >= 16, "App has at least 16 keys: {app:?}");
    for key in app.keys() {
        assert!(
            sets(key),
            "config.example.toml does not document apps.{key}"
        );
    }

    let defaults = Config {
        apps: config.apps.clone(),
        using_development_app: false,
        ..Config::default()
    };
    assert_eq!(
        config, defaults,
        "server values in the example are the defaults"
    );
    let example_app = &config.apps[0];
    let app_defaults = App {
        id: example_app.id.clone(),
        key: example_app.key.clone(),
        secret: example_app.secret.clone(),
        ..App::default()
    };
    assert_eq!(
        *example_app, app_defaults,
        "app values in the example are the defaults"
    );
}

#[tokio::test]
async fn config_example_starts_the_server() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let mut cmd = clarion();
    cmd.arg("--config").arg(&path).args([
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--log-format",
        "json",
    ]);
    let mut server = Captured::spawn(cmd);
    let addr = server
        .wait_listening(START_TIMEOUT)
        .expect("address in the JSON log");
    let out = server.output();
    assert!(!out.contains("development app"), "{out}");
    assert_eq!(http_get(addr.port(), "/up").0, 200);
    let m = first_ws_message(addr.port(), "my-app-key").await;
    assert_eq!(m["event"], "pusher:connection_established", "{m}");
    // The development app is gone once an app is configured.
    let m = first_ws_message(addr.port(), "app-key").await;
    assert_eq!(m["event"], "pusher:error", "{m}");
    assert_eq!(m["data"]["code"], 4001, "{m}");
}

#[test]
fn port_precedence_is_flag_then_env_then_file() {
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let file = config_file(&format!("port = {file_port}\n"));

    // File only.
    let mut cmd = clarion();
    cmd.arg("--config").arg(file.path());
    let server = start_on(cmd, file_port);
    assert_eq!(http_get(file_port, "/up").0, 200);
    drop(server);

    // Environment beats the file (the file is also given through the environment).
    let mut cmd = clarion();
    cmd.env("CLARION_CONFIG", file.path())
        .env("CLARION_PORT", env_port.to_string());
    let server = start_on(cmd, env_port);
    assert_eq!(http_get(env_port, "/up").0, 200);
    drop(server);

    // The flag beats both.
    let mut cmd = clarion();
    cmd.env("CLARION_CONFIG", file.path())
        .env("CLARION_PORT", env_port.to_string())
        .args(["--port", &flag_port.to_string()]);
    let server = start_on(cmd, flag_port);
    let (status, body) = http_get(flag_port, "/up");
    assert_eq!(status, 200, "{body}");
    drop(server);
}

#[test]
fn without_config_the_development_app_is_announced_and_health_answers() {
    let port = free_port();
    let mut cmd = clarion();
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
    let mut server = Captured::spawn(cmd);
    server.wait_listening(START_TIMEOUT);
    let out = server.output();
    assert!(out.contains("development app"), "{out}");
    for path in ["/up", "/", "/ready"] {
        let (status, body) = http_get(port, path);
        assert_eq!(status, 200, "GET {path}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON body");
        assert_eq!(v["health"], "OK", "GET {path}: {body}");
    }
}

#[tokio::test]
async fn app_from_environment_accepts_websocket_connections() {
    let port = free_port();
    let mut cmd = clarion();
    cmd.env("CLARION_APP_ID", "env-id")
        .env("CLARION_APP_KEY", "env-key")
        .env("CLARION_APP_SECRET", "env-secret")
        .env("CLARION_PORT", port.to_string());
    let server = start_on(cmd, port);
    assert!(
        !server.output().contains("development app"),
        "{}",
        server.output()
    );

    let m = first_ws_message(port, "env-key").await;
    assert_eq!(m["event"], "pusher:connection_established", "{m}");
    let data: Value =
        serde_json::from_str(m["data"].as_str().expect("data is a JSON string")).expect("JSON");
    assert_eq!(data["activity_timeout"], 120, "{m}");

    let m = first_ws_message(port, "app-key").await;
    assert_eq!(m["event"], "pusher:error", "{m}");
    assert_eq!(m["data"]["code"], 4001, "{m}");
}
