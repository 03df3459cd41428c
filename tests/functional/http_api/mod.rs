//! The HTTP API against a real server on a free port, with requests signed by `tests/common`
//! independently of the server's own code. One module per endpoint or concern:
//! * `signing`: the request signature rules (auth_key, auth_timestamp, auth_version, body_md5,
//!   query encoding).
//! * `apps`: the app in the path (unknown, disabled) and app isolation.
//! * `routes`: wrong methods, unknown endpoints, health endpoints, the path prefix.
//! * `events`: `POST /events`.
//! * `batch_events`: `POST /batch_events`.
//! * `channels`: `GET /channels` and `GET /channels/{channel}`.
//! * `users`: `GET /channels/{channel}/users` and `POST /users/{id}/terminate_connections`.

use crate::common::*;

use std::time::Duration;

use serde_json::{json, Value};

mod apps;
mod batch_events;
mod channels;
mod events;
mod routes;
mod signing;
mod users;

const ONE_APP: &str = "[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\nenable_client_messages=true\n";

/// Two apps, for isolation and foreign-key tests.
const TWO_APPS: &str =
    "[[apps]]\nid=\"1\"\nkey=\"k\"\nsecret=\"s\"\n[[apps]]\nid=\"2\"\nkey=\"k2\"\nsecret=\"s2\"\n";

/// Asserts an error status and a JSON object body with a string `error`; returns the message.
fn assert_error(status: u16, body: &Value, expected: u16) -> String {
    assert_eq!(status, expected, "unexpected status, body {body}");
    assert!(body.is_object(), "error body is not a JSON object: {body}");
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("error body has no string \"error\": {body}"))
        .to_string()
}

/// `POST /apps/{id}/events` with `body`; returns status and body (whatever they are).
async fn post_events(server: &TestServer, app: &TestApp, body: &Value) -> (u16, Value) {
    let path = format!("/apps/{}/events", app.id);
    server.api(app, "POST", &path, &[], &body.to_string()).await
}

/// The channel_data of a presence member `user_id` (raw JSON value) with a small `user_info`.
fn member(user_id: Value) -> String {
    json!({"user_id": user_id, "user_info": {"n": 1}}).to_string()
}

async fn get(
    server: &TestServer,
    app: &TestApp,
    path: &str,
    query: &[(&str, &str)],
) -> (u16, Value) {
    server.api(app, "GET", path, query, "").await
}
