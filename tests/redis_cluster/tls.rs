//! The Redis adapter over TLS with an ACL user: a real `redis-server` listening with TLS only
//! (certificates made by `openssl` for each test), its default user switched off and Clarion's
//! user given exactly the ACL that docs/cluster.md prints. Two nodes on it behave as one
//! server; a `kill -9`ed node leaves no ghost; and each setting Redis refuses for good (a wrong
//! password, no channel rights, a certificate from another CA, no client certificate where one
//! is required) stops the node with a message that names it and never shows the password.

use crate::common::certs::Certs;
use crate::common::process::{expect_member_removed, run_to_exit, wait_ready, Process};
use crate::common::redis::{free_port, Redis};
use crate::common::*;

use std::time::Duration;

use serde_json::json;

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";
const PASSWORD: &str = "Pw-not-in-logs-7";

/// The ACL line of docs/cluster.md, so the documented rights are the tested ones.
fn documented_acl() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cluster.md"))
        .expect("docs/cluster.md");
    let line = doc
        .lines()
        .find(|l| l.starts_with("ACL SETUSER clarion "))
        .expect("docs/cluster.md prints the ACL");
    line.split_whitespace()
        .skip(3) // ACL SETUSER clarion
        .map(|w| {
            if w == ">CHANGE-ME" {
                format!(">{PASSWORD}")
            } else {
                w.to_string()
            }
        })
        .collect()
}

/// A TLS-only Redis with the documented `clarion` user, a `nochan` user that has the same
/// rights but no pub/sub channel, and no default user.
fn secured_redis(certs: &Certs, client_certs: bool) -> Redis {
    let acl = documented_acl();
    let mut args: Vec<&str> = vec!["--user", "clarion"];
    args.extend(acl.iter().map(String::as_str));
    let nochan: Vec<String> = acl
        .iter()
        .filter(|w| !w.starts_with('&'))
        .map(|w| w.replace(PASSWORD, "other-pw"))
        .collect();
    args.extend(["--user", "nochan"]);
    args.extend(nochan.iter().map(String::as_str));
    args.extend(["--user", "default", "off"]);
    Redis::start_tls(certs, client_certs, &args)
}

fn url(redis: &Redis, user: &str, password: &str) -> String {
    format!("rediss://{user}:{password}@127.0.0.1:{}/0", redis.port)
}

/// Node settings for `redis` with the given URL and CA, plus extra lines.
fn settings(url: &str, ca: &str, extra: &str) -> String {
    format!(
        "adapter = \"redis\"\nredis_url = \"{url}\"\nredis_tls_ca_file = \"{ca}\"\nredis_prefix = \"clarion\"\n{extra}\n{APP}"
    )
}

async fn ready_node(toml: &str) -> TestServer {
    let s = TestServer::start(toml).await;
    for _ in 0..100 {
        if s.raw_http("GET", "/ready", "").await.0 == 200 {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node never became ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_over_tls_with_the_documented_acl_are_one_server() {
    let certs = Certs::generate();
    let redis = secured_redis(&certs, false);
    let toml = settings(&url(&redis, "clarion", PASSWORD), &certs.ca, "");
    let a = ready_node(&toml).await;
    // B as its own process, so that it can be killed with SIGKILL.
    let mut b = Process::start(&toml, &[]).await;
    assert!(
        wait_ready(b.addr, Duration::from_secs(5)).await,
        "node B never became ready"
    );

    // Events reach every node exactly once, socket_id exclusion included.
    let (mut on_a, _) = a.connect("k").await;
    let (mut on_b, b_sid) = b.connect("k").await;
    on_a.subscribe("orders", Some(""), None).await;
    on_b.subscribe("orders", Some(""), None).await;
    let body = json!({"name": "created", "channel": "orders", "data": "{}", "socket_id": b_sid});
    trigger_raw(&a, &app1(), &body.to_string()).await;
    on_a.expect_event("created").await;
    trigger(&a, &app1(), "orders", "second", "{}").await;
    for c in [&mut on_a, &mut on_b] {
        c.expect_event("second").await;
        c.expect_silence(Duration::from_millis(300)).await;
    }

    // Presence is cluster-wide, and a killed node's member is removed.
    let (mut observer, sid) = a.connect("k").await;
    let data = json!({"user_id": "alive"}).to_string();
    let auth = channel_auth(&app1(), &sid, "presence-team", Some(&data));
    observer
        .subscribe("presence-team", Some(&auth), Some(&data))
        .await;
    let (mut ghost, sid) = b.connect("k").await;
    let data = json!({"user_id": "ghost"}).to_string();
    let auth = channel_auth(&app1(), &sid, "presence-team", Some(&data));
    let ok = ghost
        .subscribe("presence-team", Some(&auth), Some(&data))
        .await;
    assert_eq!(decode_data(&ok)["presence"]["count"], 2, "{ok}");
    observer.expect_event("pusher_internal:member_added").await;
    b.kill();
    expect_member_removed(&mut observer, "ghost").await;
    let (_, body) = a.api(&app1(), "GET", "/apps/1/connections", &[], "").await;
    assert_eq!(body["connections"], 2, "on_a and observer: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let certs = Certs::generate();
    let redis = secured_redis(&certs, true);
    let base = settings(&url(&redis, "clarion", PASSWORD), &certs.ca, "");
    let with_cert = format!(
        "redis_tls_cert_file = \"{}\"\nredis_tls_key_file = \"{}\"\n{base}",
        certs.client_cert, certs.client_key
    );
    let a = ready_node(&with_cert).await;
    let b = ready_node(&with_cert).await;
    let (mut on_b, _) = b.connect("k").await;
    on_b.subscribe("orders", Some(""), None).await;
    trigger(&a, &app1(), "orders", "created", "{}").await;
    on_b.expect_event("created").await;

    let (code, err) = run_to_exit(&base);
    assert_ne!(
        code, 0,
        "a node without its client certificate must not run: {err}"
    );
    assert!(
        err.contains("cannot start the cluster adapter")
            && err.contains("redis_tls_cert_file")
            && !err.contains(PASSWORD),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_stop_the_node_and_name_the_problem() {
    let certs = Certs::generate();
    let redis = secured_redis(&certs, false);

    let (code, err) = run_to_exit(&settings(
        &url(&redis, "clarion", "Wrong-pw-3"),
        &certs.ca,
        "",
    ));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("authentication failed"), "{err}");
    assert!(
        !err.contains("Wrong-pw-3") && err.contains("clarion:********@"),
        "{err}"
    );

    let (code, err) = run_to_exit(&settings(&url(&redis, "nochan", "other-pw"), &certs.ca, ""));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("NOPERM") && err.contains("&clarion:bus") && !err.contains("other-pw"),
        "{err}"
    );

    let other = certs.unrelated_ca();
    let (code, err) = run_to_exit(&settings(&url(&redis, "clarion", PASSWORD), &other, ""));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("TLS") && err.contains("redis_tls_ca_file"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");

    // Not a refusal: nothing listens there. The node starts, serves locally, is not ready.
    let nowhere = format!("rediss://clarion:{PASSWORD}@127.0.0.1:{}/0", free_port());
    let s = TestServer::start(&settings(&nowhere, &certs.ca, "")).await;
    let (mut c, _) = s.connect("k").await;
    c.subscribe("orders", Some(""), None).await;
    trigger(&s, &app1(), "orders", "local", "{}").await;
    c.expect_event("local").await;
    assert_eq!(s.raw_http("GET", "/ready", "").await.0, 503);
}

#[test]
fn tls_settings_are_checked_when_the_configuration_is_read() {
    let (code, err) = run_to_exit(&format!(
        "adapter = \"redis\"\nredis_url = \"redis://u:{PASSWORD}@127.0.0.1:1/0\"\nredis_tls_ca_file = \"/x.pem\"\n{APP}"
    ));
    assert_eq!(code, 2, "a configuration error: {err}");
    assert!(
        err.contains("redis_tls_ca_file: only applies to a rediss:// URL"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
}
