//! SECURITY.md 2, "Secrets and encrypted payloads stay out of logs, errors and metrics": the
//! real binary at trace level with its output captured, error bodies, `/metrics`, `check-config`
//! and webhook requests.

use super::*;

// --- The real binary, its logs captured ------------------------------------------------------

/// The binary with a clean `CLARION_*` environment and `RUST_LOG=trace`: every log line any
/// crate in the process can emit is captured.
fn clarion() -> Command {
    crate::common::binary::clarion("trace")
}

/// Starts `cmd` on 127.0.0.1 and a free port, with stdout and stderr captured, and waits until
/// it logs that it listens; returns it and the address it logged.
fn start_logged(mut cmd: Command) -> (Captured, SocketAddr) {
    cmd.args(["--host", "127.0.0.1", "--port", "0"]);
    let mut server = Captured::spawn(cmd);
    let addr = server
        .wait_listening(Duration::from_secs(30))
        .expect("address in the listening line");
    (server, addr)
}

/// Fails if `needle` (or its hex encoding, as WebSocket frame dumps print payloads) appears in
/// the captured output; shows the offending lines.
fn assert_absent(output: &str, needle: &str, what: &str) {
    let hex_needle = hex::encode(needle.as_bytes());
    let hits: Vec<&str> = output
        .lines()
        .filter(|l| l.contains(needle) || l.to_ascii_lowercase().contains(&hex_needle))
        .collect();
    if hits.is_empty() {
        return;
    }
    let shown: Vec<String> = hits
        .iter()
        .take(3)
        .map(|l| l.chars().take(600).collect())
        .collect();
    panic!(
        "{what}: {needle:?} appears on {} line(s) of the output, e.g.:\n{}",
        hits.len(),
        shown.join("\n")
    );
}

/// Makes the server log at DEBUG level for sure: a request that is not HTTP ends its
/// connection with an error, which the server logs at DEBUG.
async fn provoke_a_debug_line(addr: SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("tcp connect");
    s.write_all(b"NOT HTTP AT ALL\r\n\r\n")
        .await
        .expect("write");
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut sink)).await;
}

/// Fails unless the capture holds lines below INFO (so that a capture where the verbose levels
/// were lost cannot pass). `provoke_a_debug_line` guarantees there is one.
fn assert_verbose_capture(output: &str, json_format: bool) {
    let verbose = ["DEBUG", "TRACE"].iter().any(|level| {
        if json_format {
            output.contains(&format!("\"level\":\"{level}\""))
        } else {
            output.lines().any(|l| l.contains(&format!(" {level} ")))
        }
    });
    assert!(
        verbose,
        "the capture holds no DEBUG or TRACE line; is RUST_LOG honoured?\n{output}"
    );
}

// ---------------------------------------------------------------------------------------------
// private-encrypted- payloads are never logged
// ---------------------------------------------------------------------------------------------

/// Triggers (single, batch, cache replay) and a client event on encrypted channels carry
/// distinctive markers while the binary logs at trace level; none may appear in the logs.
async fn encrypted_payloads_stay_out_of_the_logs(log_format: &str) {
    let file = config_file(
        "[[apps]]\nid = \"enc\"\nkey = \"enc-key\"\nsecret = \"enc-secret\"\n\
         enable_client_messages = true\n",
    );
    let mut cmd = clarion();
    cmd.arg("--config")
        .arg(file.path())
        .args(["--metrics-port", "0", "--log-format", log_format]);
    let (server, addr) = start_logged(cmd);
    let app = TestApp::new("enc", "enc-key", "enc-secret");
    let ch = "private-encrypted-x";
    let cache_ch = "private-encrypted-cache-x";

    let (mut sub, sid) = connect_at(addr, "enc-key").await;
    join_private(&mut sub, &app, &sid, ch).await;

    let single = r#"{"nonce":"NONCE_MARKER_123","ciphertext":"CIPHER_MARKER_456"}"#;
    let body = json!({"name": "secret-event", "channel": ch, "data": single}).to_string();
    let (status, resp) = api_at(addr, &app, "POST", "/apps/enc/events", &[], &body).await;
    assert_eq!((status, resp), (200, json!({})));
    let m = next_is_on(&mut sub, "secret-event", ch).await;
    assert_eq!(m["data"], single, "forwarded byte for byte");

    let batched = r#"{"nonce":"NONCE_BATCH_MARKER_321","ciphertext":"CIPHER_BATCH_MARKER_654"}"#;
    let body = json!({"batch": [{"name": "secret-batch", "channel": ch, "data": batched}]});
    let (status, resp) = api_at(
        addr,
        &app,
        "POST",
        "/apps/enc/batch_events",
        &[],
        &body.to_string(),
    )
    .await;
    assert_eq!((status, resp), (200, json!({})));
    let m = next_is_on(&mut sub, "secret-batch", ch).await;
    assert_eq!(m["data"], batched);

    // Cached, then replayed to a new subscriber.
    let cached = r#"{"nonce":"NONCE_CACHE_MARKER_777","ciphertext":"CIPHER_CACHE_MARKER_888"}"#;
    let body = json!({"name": "secret-cached", "channel": cache_ch, "data": cached}).to_string();
    let (status, resp) = api_at(addr, &app, "POST", "/apps/enc/events", &[], &body).await;
    assert_eq!((status, resp), (200, json!({})));
    let (mut late, late_sid) = connect_at(addr, "enc-key").await;
    join_private(&mut late, &app, &late_sid, cache_ch).await;
    let m = next_is_on(&mut late, "secret-cached", cache_ch).await;
    assert_eq!(m["data"], cached);

    let (mut sender, sender_sid) = connect_at(addr, "enc-key").await;
    join_private(&mut sender, &app, &sender_sid, ch).await;
    // A client event on an encrypted channel: refused (protocol.md §4.1 allows refusing; the
    // server does), delivered to no one, and its payload is not logged either.
    let whisper =
        json!({"nonce": "NONCE_CLIENT_MARKER_999", "ciphertext": "CIPHER_CLIENT_MARKER_000"});
    sender
        .send(json!({"event": "client-typing", "channel": ch, "data": whisper}))
        .await;
    let m = sender.recv().await;
    assert_eq!(m["event"], "pusher:error", "{m}");
    assert_eq!(m["channel"], ch, "{m}");
    assert_eq!(decode_data(&m)["code"], 4301, "{m}");
    assert_nothing_queued(&mut sub, "the other subscriber of the encrypted channel").await;

    drop((sub, sender, late));
    provoke_a_debug_line(addr).await;
    let out = server.stop(Duration::from_secs(10));
    assert_verbose_capture(&out, log_format == "json");
    for marker in [
        "NONCE_MARKER_123",
        "CIPHER_MARKER_456",
        "NONCE_BATCH_MARKER_321",
        "CIPHER_BATCH_MARKER_654",
        "NONCE_CACHE_MARKER_777",
        "CIPHER_CACHE_MARKER_888",
        "NONCE_CLIENT_MARKER_999",
        "CIPHER_CLIENT_MARKER_000",
    ] {
        assert_absent(&out, marker, &format!("{log_format} log at RUST_LOG=trace"));
    }
}

// Found a bug when written (both tests below): at RUST_LOG=trace, tungstenite logs every WebSocket frame with its
// payload ("Sending frame: Frame { … payload: b\"…\" }", "Received message …", and a hex dump in
// "writing frame"). Its `log` records reach the subscriber through tracing-subscriber's default
// `tracing-log` bridge, installed by `.init()` in src/main.rs `init_logging` (lines 12-25), so
// the ciphertext of `private-encrypted-` events ends up in the log. Fix: in `init_logging`,
// drop TRACE events whose target starts with `tungstenite`/`tokio_tungstenite` with a global
// `tracing_subscriber::filter::filter_fn` layer (`builder.finish().with(filter).init()`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_channel_payloads_never_appear_in_text_logs_at_trace() {
    encrypted_payloads_stay_out_of_the_logs("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_channel_payloads_never_appear_in_json_logs_at_trace() {
    encrypted_payloads_stay_out_of_the_logs("json").await;
}

// ---------------------------------------------------------------------------------------------
// Secrets never appear in logs, error bodies or metrics
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "sEcReT_MaRkEr_789";

/// Good and bad requests of every kind against the binary at trace level: the app secret never
/// appears in a response body, a WebSocket message, the metrics, `check-config` or the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_secret_never_appears_in_logs_error_bodies_or_metrics() {
    let config = format!(
        "[[apps]]\nid = \"sec\"\nkey = \"sec-key\"\nsecret = \"{SECRET}\"\n\
         enable_client_messages = true\n"
    );
    let file = config_file(&config);
    let metrics_port = free_port();
    let mut cmd = clarion();
    cmd.arg("--config")
        .arg(file.path())
        .args(["--metrics-port", &metrics_port.to_string()]);
    let (server, addr) = start_logged(cmd);
    let app = TestApp::new("sec", "sec-key", SECRET);
    let wrong = TestApp::new("sec", "sec-key", "not-the-secret");

    let mut seen = Vec::new(); // every body and message the server sent, checked at the end
    let (mut c, sid) = connect_at(addr, "sec-key").await;
    assert_succeeded(&c.subscribe("news", Some(""), None).await, "news");

    // A good trigger, then bad ones: wrong secret, wrong key, expired, bad body_md5.
    let body = json!({"name": "e", "channel": "news", "data": "{}"}).to_string();
    let q = signed_query(&app, "POST", "/apps/sec/events", &[], &body, now());
    let (status, text) = http_text(addr, "POST", &format!("/apps/sec/events?{q}"), &body).await;
    assert_eq!(status, 200, "{text}");
    seen.push(text);
    seen.push(c.recv().await.to_string());
    for (what, creds, ts, sent_body) in [
        ("wrong secret", &wrong, now(), body.clone()),
        (
            "wrong key",
            &TestApp::new("sec", "other-key", SECRET),
            now(),
            body.clone(),
        ),
        ("expired", &app, now() - 601, body.clone()),
        ("body changed", &app, now(), body.replace("news", "other")),
    ] {
        let q = signed_query(creds, "POST", "/apps/sec/events", &[], &body, ts);
        let (status, text) =
            http_text(addr, "POST", &format!("/apps/sec/events?{q}"), &sent_body).await;
        assert_eq!(status, 401, "{what}: {text}");
        let v: Value = serde_json::from_str(&text).expect("401 body is JSON");
        assert!(v["error"].is_string(), "{what}: {text}");
        assert!(
            !text.contains(SECRET),
            "{what}: the 401 body shows the secret: {text}"
        );
        seen.push(text);
    }
    let q = signed_query(&wrong, "GET", "/apps/sec/channels", &[], "", now());
    let (status, text) = http_text(addr, "GET", &format!("/apps/sec/channels?{q}"), "").await;
    assert_eq!(status, 401, "{text}");
    seen.push(text);
    let (_, text) = http_text(addr, "GET", "/apps/sec/channels", "").await;
    seen.push(text);
    let (_, text) = http_text(addr, "GET", "/apps/nope/channels", "").await;
    seen.push(text);
    for path in ["/", "/up", "/ready", "/usage"] {
        seen.push(http_text(addr, "GET", path, "").await.1);
    }

    // WebSocket: bad channel auth, bad presence auth, bad sign-in, then good ones.
    for ch in ["private-x", "private-encrypted-x"] {
        let auth = channel_auth(&wrong, &sid, ch, None);
        let m = c.subscribe(ch, Some(&auth), None).await;
        assert_auth_error("wrong secret", &m, ch);
        seen.push(m.to_string());
    }
    let data = r#"{"user_id":"u"}"#;
    let auth = channel_auth(&wrong, &sid, "presence-x", Some(data));
    let m = c.subscribe("presence-x", Some(&auth), Some(data)).await;
    assert_auth_error("wrong secret", &m, "presence-x");
    seen.push(m.to_string());
    let m = signin(&mut c, &wrong, &sid, r#"{"id":"u"}"#).await;
    assert_eq!(m["event"], "pusher:error", "{m}");
    seen.push(m.to_string());
    join_private(&mut c, &app, &sid, "private-x").await;
    signin_ok(&mut c, &app, &sid, r#"{"id":"u"}"#).await;
    // An unknown key and a malformed frame.
    let mut unknown = WsClient::connect(&format!("ws://{addr}/app/nope?protocol=7")).await;
    seen.push(unknown.recv().await.to_string());
    c.send_text("{not json").await;
    seen.push(c.recv().await.to_string());

    // Metrics.
    let (status, metrics) = http_text(
        SocketAddr::from(([127, 0, 0, 1], metrics_port)),
        "GET",
        "/metrics",
        "",
    )
    .await;
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains("clarion_"),
        "metrics are served: {metrics}"
    );
    assert!(
        !metrics.contains(SECRET),
        "the metrics show the secret:\n{metrics}"
    );

    for text in &seen {
        assert!(!text.contains(SECRET), "the server sent the secret: {text}");
    }

    // check-config on the same file, the Redis password and a second app secret coming from
    // the environment: both masked.
    let out = clarion()
        .arg("check-config")
        .arg(file.path())
        .env(
            "CLARION_REDIS_URL",
            "redis://user:RedisPw_MaRkEr_321@127.0.0.1:6379/0",
        )
        .output()
        .expect("run check-config");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("sec-key"),
        "the settings are printed: {printed}"
    );
    assert!(
        !printed.contains(SECRET),
        "check-config shows the secret: {printed}"
    );
    assert!(
        !printed.contains("RedisPw_MaRkEr_321"),
        "check-config shows the Redis password: {printed}"
    );
    let out = clarion()
        .args([
            "--app-id",
            "env-app",
            "--app-key",
            "env-key",
            "check-config",
        ])
        .arg(file.path())
        .env("CLARION_APP_SECRET", "EnvSecret_MaRkEr_654")
        .output()
        .expect("run check-config");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("env-key"), "{printed}");
    assert!(
        !printed.contains("EnvSecret_MaRkEr_654") && !printed.contains(SECRET),
        "check-config shows a secret: {printed}"
    );

    drop((c, unknown));
    provoke_a_debug_line(addr).await;
    let out = server.stop(Duration::from_secs(10));
    assert_verbose_capture(&out, false);
    assert_absent(&out, SECRET, "log at RUST_LOG=trace");
}

/// `check-config` refusing a configuration must not print the Redis password either (the
/// message goes to stderr, i.e. usually to a log).
// Found a bug when written: src/config.rs `Config::finish` formatted `self.redis_url` verbatim in the
// "is not a redis:// or rediss:// URL" error, password included. Fix: format
// `mask_url_password(&self.redis_url)` instead.
#[test]
fn check_config_error_does_not_print_the_redis_password() {
    let file = config_file(
        "adapter = \"redis\"\nredis_url = \"valkey://user:RedisPw_MaRkEr_987@127.0.0.1:6379/0\"\n",
    );
    let out = clarion()
        .arg("check-config")
        .arg(file.path())
        .output()
        .expect("run check-config");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{printed}");
    assert!(printed.contains("redis_url"), "names the key: {printed}");
    assert!(
        !printed.contains("RedisPw_MaRkEr_987"),
        "the error shows the Redis password: {printed}"
    );
}

/// A Redis password that contains `@` (valid for the URL parser Redis uses) is masked whole.
// Found a bug when written: src/config.rs `mask_url_password` split the URL at the FIRST `@`, so with
// `redis://user:Pw_HEAD@Pw_TAIL@host` it prints `redis://user:********@Pw_TAIL@host`. The redis
// crate (url crate) ends the userinfo at the LAST `@` and accepts this URL (checked: it
// authenticates with password `Pw_HEAD@Pw_TAIL`). Fix: `rest.rsplit_once('@')`, applied to
// the authority only (the part of `rest` before the first `/`, `?` or `#`).
#[test]
fn check_config_masks_a_redis_password_containing_an_at_sign() {
    let file = config_file(
        "adapter = \"redis\"\nredis_url = \"redis://user:Pw_HEAD@Pw_TAIL_MaRkEr@127.0.0.1:6379/0\"\n",
    );
    let out = clarion()
        .arg("check-config")
        .arg(file.path())
        .output()
        .expect("run check-config");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(
        !printed.contains("Pw_HEAD") && !printed.contains("Pw_TAIL_MaRkEr"),
        "part of the Redis password is shown: {printed}"
    );
}

/// With the Redis adapter at trace level, the Redis password in `redis_url` never reaches the
/// logs, whether Redis accepts it or refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_password_never_appears_in_logs() {
    let redis = crate::common::redis::Redis::start_with(&["--requirepass", "RightPw_MaRkEr_111"]);
    let redis_port = redis.port;
    let mut outputs = Vec::new();
    // A wrong password now stops the node at start (its message is checked below); the
    // right one runs it, failing later only if Redis changes its mind.
    let wrong = "WrongPw_MaRkEr_222";
    let mut cmd = clarion();
    cmd.args(["--metrics-port", "0", "--adapter", "redis"])
        .env(
            "CLARION_REDIS_URL",
            format!("redis://default:{wrong}@127.0.0.1:{redis_port}/0"),
        )
        .env("CLARION_APP_ID", "r")
        .env("CLARION_APP_KEY", "r-key")
        .env("CLARION_APP_SECRET", "r-secret");
    let out = cmd.output().expect("run clarion");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused password stops the start"
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("authentication failed"), "{text}");
    assert_absent(&text, wrong, "the start-up refusal");
    for password in ["RightPw_MaRkEr_111"] {
        let mut cmd = clarion();
        cmd.args(["--metrics-port", "0", "--adapter", "redis"])
            .env(
                "CLARION_REDIS_URL",
                format!("redis://default:{password}@127.0.0.1:{redis_port}/0"),
            )
            .env("CLARION_APP_ID", "r")
            .env("CLARION_APP_KEY", "r-key")
            .env("CLARION_APP_SECRET", "r-secret");
        let (server, addr) = start_logged(cmd);
        let app = TestApp::new("r", "r-key", "r-secret");
        let (mut c, sid) = connect_at(addr, "r-key").await;
        join_presence(&mut c, &app, &sid, "presence-r", r#"{"user_id":"1"}"#).await;
        let body = json!({"name": "e", "channel": "presence-r", "data": "{}"}).to_string();
        let (status, resp) = api_at(addr, &app, "POST", "/apps/r/events", &[], &body).await;
        assert_eq!(status, 200, "{resp}");
        let _ = api_at(addr, &app, "GET", "/apps/r/channels", &[], "").await;
        // Give the adapter time to talk to (or fail against) Redis.
        tokio::time::sleep(Duration::from_millis(700)).await;
        drop(c);
        provoke_a_debug_line(addr).await;
        outputs.push((password, server.stop(Duration::from_secs(10))));
    }
    drop(redis);
    for (password, out) in &outputs {
        assert_verbose_capture(out, false);
        assert!(
            out.contains("redis"),
            "the redis adapter was in use:\n{out}"
        );
        assert_absent(out, password, "log with the redis adapter");
    }
}

// ---------------------------------------------------------------------------------------------
// Webhooks carry a signature, never the secret
// ---------------------------------------------------------------------------------------------

/// Webhook requests (channel existence, presence, client events) are signed with the secret
/// but neither their body nor any header contains it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_but_never_carry_the_secret() {
    let mut rx = Receiver::start(vec![]).await;
    let server = TestServer::start(&format!(
        "webhook_delay_ms = 100\n\
         [[apps]]\nid = \"hook\"\nkey = \"hook-key\"\nsecret = \"{SECRET}\"\n\
         enable_client_messages = true\n\
         [[apps.webhooks]]\nurl = \"{}\"\n",
        rx.url()
    ))
    .await;
    let app = TestApp::new("hook", "hook-key", SECRET);
    let (mut c1, sid1) = server.connect("hook-key").await;
    join_presence(&mut c1, &app, &sid1, "presence-h", r#"{"user_id":"1"}"#).await;
    let (mut c2, sid2) = server.connect("hook-key").await;
    join_presence(&mut c2, &app, &sid2, "presence-h", r#"{"user_id":"2"}"#).await;
    c2.send(json!({"event": "client-hi", "channel": "presence-h", "data": {"x": 1}}))
        .await;
    next_is_on(&mut c1, "pusher_internal:member_added", "presence-h").await;
    next_is_on(&mut c1, "client-hi", "presence-h").await;

    let mut names = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !["channel_occupied", "member_added", "client_event"]
        .iter()
        .all(|n| names.contains(*n))
    {
        assert!(Instant::now() < deadline, "webhooks seen: {names:?}");
        let hook = rx.next().await;
        assert!(
            !hook.body.contains(SECRET),
            "the webhook body has the secret: {}",
            hook.body
        );
        for (name, value) in &hook.headers {
            let v = String::from_utf8_lossy(value.as_bytes());
            assert!(!v.contains(SECRET), "header {name} has the secret: {v}");
        }
        assert_eq!(hook.headers["x-pusher-key"], "hook-key");
        assert_eq!(
            hook.headers["x-pusher-signature"].to_str().expect("ascii"),
            hmac_hex(SECRET, &hook.body),
            "signed with the secret over the exact body"
        );
        for e in hook.events() {
            names.insert(e["name"].as_str().unwrap_or_default().to_string());
        }
    }
}

/// Credentials in a webhook URL (`https://user:pw@host/…`) are masked by `check-config`, like
/// the app secret and the Redis password.
#[test]
fn check_config_masks_webhook_url_credentials() {
    let file = config_file(
        "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n\
         [[apps.webhooks]]\nurl = \"https://hook:HookPw_MaRkEr_321@example.test/pusher\"\n",
    );
    let out = clarion()
        .arg("check-config")
        .arg(file.path())
        .output()
        .expect("run check-config");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{printed}");
    assert!(
        printed.contains("https://hook:********@example.test/pusher"),
        "{printed}"
    );
    assert!(!printed.contains("HookPw_MaRkEr_321"), "{printed}");
}
