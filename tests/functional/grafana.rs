//! The Grafana dashboard shipped in `dashboards/grafana/clarion.json` refers only to metrics the
//! server exports: each name in its queries is found in a real scrape, after traffic that makes
//! every labelled family appear.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::process::scrape;
use crate::common::*;

/// Every `clarion_…` metric name in the dashboard's queries, histogram series folded into
/// their family.
fn referenced() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dashboards/grafana/clarion.json"
    ))
    .expect("the dashboard");
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    for v in dash["templating"]["list"].as_array().expect("variables") {
        if let Some(q) = v["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    let mut names = Vec::new();
    for e in exprs {
        let mut rest = e.as_str();
        while let Some(at) = rest.find("clarion_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.push(family.to_string());
            rest = &tail[end..];
        }
    }
    names.sort();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_grafana_dashboard_uses_is_exported() {
    let names = referenced();
    assert!(
        names.len() >= 15,
        "the dashboard queries the main families: {names:?}"
    );
    let (s, port) = TestServer::start_with_metrics(
        "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenable_client_messages = true\nmax_backend_events_per_second = 1\n",
    )
    .await;
    let app = app1();
    let (mut a, _) = private_sub(&s, &app, "private-chat").await;
    let (_b, _) = private_sub(&s, &app, "private-chat").await;
    let _member = presence_sub(&s, &app, "presence-room", r#"{"user_id":"1"}"#).await;
    a.send(json!({"event": "client-typing", "channel": "private-chat", "data": {}}))
        .await;
    for _ in 0..3 {
        let body = json!({"name": "e", "channel": "private-chat", "data": "{}"}).to_string();
        let _ = s.api(&app, "POST", "/apps/1/events", &[], &body).await;
    }
    let (gone, _) = s.connect("k").await;
    drop(gone);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = scrape(port).await;
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !text.contains(&format!("# TYPE {n} ")))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics the server does not export: {missing:?}"
    );
}
