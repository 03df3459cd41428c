//! Shared helpers for the black-box tests: a real server on a free port, a real WebSocket
//! client, and real signed HTTP requests. Signatures are computed here independently of the
//! server's code, so a signing bug in the server cannot hide behind the same bug in the tests.
#![allow(dead_code)]

pub mod admin;
pub mod binary;
pub mod certs;
pub mod process;
pub mod rcluster;
pub mod receiver;
pub mod redis;
pub mod sentinel;
mod steps;
pub mod tcp_proxy;
pub mod watch_storm;

#[allow(unused_imports)] // not every test binary takes these steps
pub use steps::*;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use clarion::config::Config;
use clarion::Server;

/// How long a test waits for an expected message before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running server; dropping it stops accepting.
pub struct TestServer {
    pub addr: SocketAddr,
    pub config: Config,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    /// Starts a server from a TOML config (host and port are forced to 127.0.0.1:0).
    pub async fn start(toml: &str) -> TestServer {
        let mut config = Config::from_toml(toml).expect("test config parses");
        config.host = "127.0.0.1".into();
        config.port = 0;
        if !toml.contains("metrics_port") {
            // Tests run in parallel: no metrics port unless a test asks for one.
            config.metrics_port = 0;
        }
        config.finish().expect("test config is valid");
        Self::start_config(config).await
    }

    /// Starts a server from `toml` with `/metrics` on a free port; returns it and the port.
    ///
    /// The port is picked free and then bound by the server; in between, the tests running
    /// beside this one can take it (another server's main port, an ephemeral port of a flood),
    /// and the server then runs without metrics (it logs and goes on) while the port answers
    /// something else. So a server whose `/metrics` does not answer 200 is started again.
    pub async fn start_with_metrics(toml: &str) -> (TestServer, u16) {
        for _ in 0..5 {
            let port = redis::free_port();
            let server = TestServer::start(&format!("metrics_port = {port}\n{toml}")).await;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if TcpStream::connect(addr).await.is_ok()
                && http_text(addr, "GET", "/metrics", "").await.0 == 200
            {
                return (server, port);
            }
        }
        panic!("no free metrics port in five tries");
    }

    /// Starts a server with the development app.
    pub async fn dev() -> TestServer {
        Self::start("").await
    }

    pub async fn start_config(config: Config) -> TestServer {
        let server = Server::bind(config.clone()).await.expect("server binds");
        let addr = server.local_addr().expect("local addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run_until(async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            config,
            _stop: tx,
        }
    }

    pub fn ws_url(&self, key: &str, query: &str) -> String {
        format!(
            "ws://{}{}/app/{key}{query}",
            self.addr, self.config.path_prefix
        )
    }

    /// Connects and reads `connection_established`; returns the client and its socket id.
    pub async fn connect(&self, key: &str) -> (WsClient, String) {
        WsClient::connect_established(
            &self.ws_url(key, "?protocol=7&client=js&version=8.4.0&flash=false"),
        )
        .await
    }

    /// Sends a signed HTTP API request for `app` and returns status and JSON body.
    pub async fn api(
        &self,
        app: &TestApp,
        method: &str,
        path: &str,
        extra_query: &[(&str, &str)],
        body: &str,
    ) -> (u16, Value) {
        let query = signed_query(app, method, path, extra_query, body, now());
        self.raw_http(
            method,
            &format!("{}{path}?{query}", self.config.path_prefix),
            body,
        )
        .await
    }

    /// Sends a plain HTTP request and returns status and JSON body (Null if not JSON).
    pub async fn raw_http(&self, method: &str, path_and_query: &str, body: &str) -> (u16, Value) {
        http_request(self.addr, method, path_and_query, body).await
    }
}

/// Connects a WebSocket client to any server address (no path prefix) and reads
/// `connection_established`; returns the client and its socket id.
pub async fn connect_at(addr: SocketAddr, key: &str) -> (WsClient, String) {
    WsClient::connect_established(&format!(
        "ws://{addr}/app/{key}?protocol=7&client=js&version=8.4.0"
    ))
    .await
}

/// Sends a signed API request for `app` to any server address (no path prefix); returns status
/// and JSON body.
pub async fn api_at(
    addr: SocketAddr,
    app: &TestApp,
    method: &str,
    path: &str,
    extra_query: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let query = signed_query(app, method, path, extra_query, body, now());
    http_request(addr, method, &format!("{path}?{query}"), body).await
}

/// Credentials of an app under test.
#[derive(Clone)]
pub struct TestApp {
    pub id: String,
    pub key: String,
    pub secret: String,
}

impl TestApp {
    pub fn new(id: &str, key: &str, secret: &str) -> TestApp {
        TestApp {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
        }
    }

    /// The development app.
    pub fn dev() -> TestApp {
        TestApp::new("app-id", "app-key", "app-secret")
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

pub fn hmac_hex(secret: &str, msg: &str) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("hmac key");
    m.update(msg.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

pub fn md5_hex(body: &str) -> String {
    hex::encode(Md5::digest(body.as_bytes()))
}

/// `key:hmac(socket_id:channel[:channel_data])`, as an app's auth endpoint returns it.
pub fn channel_auth(
    app: &TestApp,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    let msg = match channel_data {
        Some(d) => format!("{socket_id}:{channel}:{d}"),
        None => format!("{socket_id}:{channel}"),
    };
    format!("{}:{}", app.key, hmac_hex(&app.secret, &msg))
}

/// `key:hmac(socket_id::user::user_data)`.
pub fn user_auth(app: &TestApp, socket_id: &str, user_data: &str) -> String {
    format!(
        "{}:{}",
        app.key,
        hmac_hex(&app.secret, &format!("{socket_id}::user::{user_data}"))
    )
}

/// Builds a signed query string the way pusher-http-node does (raw values, sorted keys).
pub fn signed_query(
    app: &TestApp,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
    ts: i64,
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("auth_key".into(), app.key.clone()),
        ("auth_timestamp".into(), ts.to_string()),
        ("auth_version".into(), "1.0".into()),
    ];
    if !body.is_empty() {
        params.push(("body_md5".into(), md5_hex(body)));
    }
    for (k, v) in extra {
        params.push((k.to_string(), v.to_string()));
    }
    params.sort();
    let q: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let q = q.join("&");
    let sig = hmac_hex(&app.secret, &format!("{method}\n{path}\n{q}"));
    format!("{q}&auth_signature={sig}")
}

/// A minimal HTTP/1.1 request over a fresh TCP connection (hyper's client connection); the
/// body as JSON (`Null` when it is not JSON).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    body: &str,
) -> (u16, Value) {
    let (status, text) = http_text(addr, method, path_and_query, body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A minimal HTTP/1.1 request; returns the status and the body exactly as text.
pub async fn http_text(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    body: &str,
) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    let stream = TcpStream::connect(addr).await.expect("tcp connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("http handshake");
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .expect("request");
    let res = tokio::time::timeout(WAIT, sender.send_request(req))
        .await
        .expect("http response in time")
        .expect("http response");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Decodes the double-encoded `data` of a `pusher:`/`pusher_internal:` event.
pub fn decode_data(m: &Value) -> Value {
    match &m["data"] {
        Value::String(s) => serde_json::from_str(s).expect("data string holds JSON"),
        other => other.clone(),
    }
}

/// A real WebSocket client.
pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended, as seen by the client.
#[derive(Debug, PartialEq)]
pub enum Closed {
    Code(u16, String),
    NoFrame,
}

impl WsClient {
    pub async fn connect(url: &str) -> WsClient {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("websocket connect");
        WsClient { ws }
    }

    /// Connects and reads `connection_established`; returns the client and its socket id.
    pub async fn connect_established(url: &str) -> (WsClient, String) {
        let mut c = WsClient::connect(url).await;
        let m = c.recv().await;
        assert_eq!(m["event"], "pusher:connection_established", "{m}");
        let socket_id = decode_data(&m)["socket_id"]
            .as_str()
            .expect("socket_id")
            .to_string();
        (c, socket_id)
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next text message as JSON; fails the test after `WAIT`.
    pub async fn recv(&mut self) -> Value {
        self.try_recv(WAIT).await.expect("a message in time")
    }

    /// The next text message within `wait`, or None on timeout or close.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match next {
                Ok(Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).expect("server sends JSON"))
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// Skips messages until one with `event`, failing after `WAIT`.
    pub async fn expect_event(&mut self, event: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_recv(left).await {
                Some(m) if m["event"] == event => return m,
                Some(_) => continue,
                None => panic!("no {event} before timeout or close"),
            }
        }
    }

    /// Asserts that no message arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(m) = self.try_recv(wait).await {
            panic!("expected no message, got {m}");
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn closed(&mut self) -> Closed {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("connection not closed in time"),
                Ok(Some(Ok(Message::Close(Some(f))))) => {
                    return Closed::Code(u16::from(f.code), f.reason.to_string())
                }
                Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) => {
                    return Closed::NoFrame
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Sends a correctly signed `pusher:signin` and asserts `pusher:signin_success` is next.
    pub async fn sign_in(&mut self, app: &TestApp, socket_id: &str, user_data: &str) {
        let auth = user_auth(app, socket_id, user_data);
        self.send(serde_json::json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
            .await;
        let m = self.recv().await;
        assert_eq!(m["event"], "pusher:signin_success", "{m}");
    }

    /// Subscribes and returns the server's answer (succeeded or error).
    pub async fn subscribe(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Value {
        let mut data = serde_json::json!({"channel": channel});
        if let Some(a) = auth {
            data["auth"] = a.into();
        }
        if let Some(d) = channel_data {
            data["channel_data"] = d.into();
        }
        self.send(serde_json::json!({"event": "pusher:subscribe", "data": data}))
            .await;
        loop {
            let m = self.recv().await;
            let e = m["event"].as_str().unwrap_or("");
            if e == "pusher_internal:subscription_succeeded"
                || e == "pusher:subscription_error"
                || e == "pusher:error"
            {
                return m;
            }
        }
    }
}
