//! `docs/openapi.yaml` against the server: every operation it describes exists (a real signed
//! request for it is routed, not "unknown API endpoint") and answers a status the description
//! lists; a path it does not describe is unknown. The bodies against the schemas, and malformed
//! requests against the 4xx they must get, are schemathesis's part (`fuzz/api/`, docs/testing.md).

use serde_json::json;

use crate::common::*;

/// (path, method, documented statuses), read from the YAML's layout: paths at two spaces,
/// methods at four, statuses as `"NNN":` below them.
fn operations() -> Vec<(String, String, Vec<u16>)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml"))
        .expect("docs/openapi.yaml");
    let mut in_paths = false;
    let mut path = String::new();
    let mut ops: Vec<(String, String, Vec<u16>)> = Vec::new();
    for line in text.lines() {
        if line == "paths:" {
            in_paths = true;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
            path = format!("/{p}");
        } else if let Some(m) = ["get", "post", "delete", "put", "patch"]
            .iter()
            .find(|m| line == format!("    {m}:"))
        {
            ops.push((path.clone(), m.to_uppercase(), Vec::new()));
        } else if let Some(code) = line
            .trim_start()
            .strip_prefix('"')
            .and_then(|l| l.get(..3))
            .and_then(|c| c.parse::<u16>().ok())
        {
            if line.starts_with("        \"") {
                if let Some(op) = ops.last_mut() {
                    op.2.push(code);
                }
            }
        }
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_described_operation_exists_and_answers_a_described_status() {
    let ops = operations();
    assert!(ops.len() >= 11, "the description was read: {ops:?}");
    let server = TestServer::start(
        "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[[apps.recovery]]\nchannels = [\"recorded\"]\n",
    )
    .await;
    let app = app1();
    for (path, method, statuses) in &ops {
        assert!(!statuses.is_empty(), "{method} {path} lists no answer");
        let concrete = path
            .replace("{app_id}", "1")
            .replace("{user_id}", "u1")
            .replace(
                "{channel_name}",
                if path.ends_with("/history") {
                    "recorded"
                } else if path.ends_with("/users") {
                    "presence-x"
                } else {
                    "c"
                },
            );
        let body = match (method.as_str(), concrete.as_str()) {
            ("POST", "/apps/1/events") => {
                json!({"name": "e", "channel": "c", "data": "{}"}).to_string()
            }
            ("POST", "/apps/1/batch_events") => {
                json!({"batch": [{"name": "e", "channel": "c", "data": "{}"}]}).to_string()
            }
            _ => String::new(),
        };
        let (status, answer) = if concrete.starts_with("/apps/") {
            server.api(&app, method, &concrete, &[], &body).await
        } else {
            server.raw_http(method, &concrete, "").await
        };
        assert!(
            statuses.contains(&status),
            "{method} {concrete} answered {status} ({answer}), which the description does not list ({statuses:?})"
        );
        assert_ne!(
            answer["error"], "Not found: unknown API endpoint",
            "{method} {concrete} is described but not routed"
        );
    }
    let (status, answer) = server
        .api(&app, "GET", "/apps/1/nothing_here", &[], "")
        .await;
    assert_eq!(
        (status, &answer["error"]),
        (404, &json!("Not found: unknown API endpoint"))
    );
}
