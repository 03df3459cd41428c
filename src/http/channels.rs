//! Channel queries: `GET /channels`, `GET /channels/{name}`, `GET /channels/{name}/users`.
//!
//! An attribute that does not apply to a channel (`user_count` on a public channel) is left
//! out rather than refused (docs/protocol.md §0).

use std::sync::Arc;
use std::time::Instant;

use hyper::Response;
use serde_json::{json, Map, Value};

use super::info::Info;
use super::response::{self, ApiError, Body};
use crate::app::App;
use crate::protocol::channel_name::{self, ChannelKind};
use crate::protocol::query::param;
use crate::state::State;

/// The `info` of a channel query; `cache` is only known to `GET /channels/{name}`.
fn wanted(query: &[(String, String)], allow_cache: bool) -> Result<Info, ApiError> {
    Info::parse(param(query, "info").unwrap_or(""), allow_cache).map_err(ApiError::bad_request)
}

pub async fn list(
    state: &Arc<State>,
    app: &Arc<App>,
    query: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    let w = wanted(query, false)?;
    let prefix = param(query, "filter_by_prefix").unwrap_or("");
    let mut channels = Map::new();
    for (name, stats) in state.adapter.channels(app).await {
        if !name.starts_with(prefix) || stats.subscription_count == 0 {
            continue;
        }
        let mut attrs = Map::new();
        w.write_counts(&name, stats, &mut attrs);
        channels.insert(name, Value::Object(attrs));
    }
    Ok(response::ok(json!({ "channels": channels })))
}

pub async fn show(
    state: &Arc<State>,
    app: &Arc<App>,
    name: &str,
    query: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    check_name(app, name)?;
    let w = wanted(query, true)?;
    let kind = ChannelKind::of(name);
    let stats = state.adapter.channel_stats(app, name).await;
    let mut out = Map::new();
    out.insert("occupied".into(), json!(stats.subscription_count > 0));
    w.write_counts(name, stats, &mut out);
    if w.cache && kind.cache {
        let cached = state.adapter.get_cache(app, name).await;
        let value = cached
            .and_then(|c| {
                let ttl = c.ttl_left(Instant::now())?;
                let data: Value = serde_json::from_str(&c.data).ok()?;
                Some(json!({"data": data, "ttl": ttl}))
            })
            .unwrap_or(Value::Null);
        out.insert("cache".into(), value);
    }
    Ok(response::ok(Value::Object(out)))
}

pub async fn users(
    state: &Arc<State>,
    app: &Arc<App>,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    check_name(app, name)?;
    if !ChannelKind::of(name).presence {
        return Err(ApiError::bad_request(format!(
            "{name:?} is not a presence channel; only presence channels have users"
        )));
    }
    let users: Vec<Value> = state
        .adapter
        .presence_users(app, name)
        .await
        .into_iter()
        .map(|id| json!({ "id": id }))
        .collect();
    Ok(response::ok(json!({ "users": users })))
}

fn check_name(app: &App, name: &str) -> Result<(), ApiError> {
    channel_name::validate(name, app.max_channel_name_length)
        .map_err(|e| ApiError::bad_request(format!("Invalid channel {name:?}: {e}")))
}
