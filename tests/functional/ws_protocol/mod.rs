//! The WebSocket protocol against a real server on a free port, with a real WebSocket client.
//! One module per thing proven:
//! * `connection`: `pusher:connection_established`, the fatal connect errors (unknown or
//!   disabled app, quota, protocol version) and the cleanup after a disconnect.
//! * `frames`: ping/pong and activity timeouts, malformed and binary frames, the message size
//!   limit.
//! * `subscriptions`: public, private and encrypted channels, channel names, unsubscribing,
//!   apps isolated from each other.
//! * `presence`: presence channels, their members and limits.
//! * `cache`: cache channels (`cache_miss` and the replay of the last event).

use crate::common::*;

use std::time::Duration;

use serde_json::{json, Value};

mod cache;
mod connection;
mod frames;
mod presence;
mod subscriptions;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A config with one app `1`/`k`/`s` plus `extra` lines inside that app's table, after
/// `server` lines at the top level.
fn config(server: &str, app_extra: &str) -> String {
    format!(
        "{server}\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nenable_client_messages = true\n{app_extra}\n"
    )
}

/// Asserts `m` is `pusher:subscription_error` for `channel` with the given type and status,
/// with `data` as an object (not a string) and a non-empty `error` text.
fn assert_sub_error(m: &Value, channel: &str, kind: &str, status: u64) {
    assert_eq!(m["event"], "pusher:subscription_error", "{m}");
    assert_eq!(m["channel"], channel, "{m}");
    assert!(
        m["data"].is_object(),
        "subscription_error data must be an object: {m}"
    );
    assert_eq!(m["data"]["type"], kind, "{m}");
    assert_eq!(m["data"]["status"], status, "{m}");
    assert!(
        m["data"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "error text expected: {m}"
    );
}

/// Asserts a non-fatal `pusher:error` with `code` and an object `data`.
fn assert_error_code(m: &Value, code: u64) {
    assert_eq!(m["event"], "pusher:error", "{m}");
    assert!(
        m["data"].is_object(),
        "pusher:error data must be an object: {m}"
    );
    assert_eq!(m["data"]["code"], code, "{m}");
    assert!(
        m["data"]["message"].as_str().is_some_and(|e| !e.is_empty()),
        "message text expected: {m}"
    );
}

async fn get_json(server: &TestServer, app: &TestApp, sub: &str) -> Value {
    let path = format!("/apps/{}/{sub}", app.id);
    let (status, body) = server.api(app, "GET", &path, &[], "").await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}
