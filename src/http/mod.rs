//! The HTTP side of the single port: routing, health, and the signed `/apps/{id}/…` API.

pub(crate) mod admin;
pub mod auth;
pub(crate) mod channels;
pub(crate) mod dashboard;
pub mod events;
pub(crate) mod history;
pub mod info;
pub(crate) mod metrics;
pub(crate) mod response;
pub(crate) mod upgrade;
pub(crate) mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::protocol::query::{decode, parse_query};
use crate::state::State;
use response::{ApiError, Body};

/// Routes one request from the TCP peer `peer`: the WebSocket endpoint, health, or the HTTP
/// API.
pub async fn route(state: Arc<State>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let prefix = state.config.path_prefix.as_str();
    // The prefix must match whole segments: with `/ws`, `/ws/up` is routed but `/wsup` is not.
    let Some(path) = req
        .uri()
        .path()
        .strip_prefix(prefix)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .map(str::to_string)
    else {
        return response::error(StatusCode::NOT_FOUND, "Not found");
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["app", key] => upgrade::upgrade(state.clone(), req, decode(key), peer),
        [""] | ["up"] => health(&req),
        ["ready"] => ready(&state, &req),
        ["usage"] => usage(&state),
        ["apps", app_id, rest @ ..] => {
            let app_id = decode(app_id);
            let rest: Vec<String> = rest.iter().map(|s| decode(s)).collect();
            let received = req
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let res = match api(&state, req, &path, &app_id, &rest).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
            // Counted for known apps only, so that probing random ids cannot grow the label set.
            if state.apps().by_id(&app_id).is_some() {
                let m = &state.metrics;
                m.http_calls.with_label_values(&[&app_id]).inc();
                m.http_received_bytes
                    .with_label_values(&[&app_id])
                    .inc_by(received);
                let sent = hyper::body::Body::size_hint(res.body())
                    .exact()
                    .unwrap_or(0);
                m.http_sent_bytes.with_label_values(&[&app_id]).inc_by(sent);
            }
            res
        }
        _ => response::error(StatusCode::NOT_FOUND, format!("Not found: {path}")),
    }
}

fn health(req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return response::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    }
    response::ok(json!({"health": "OK"}))
}

/// Memory and connections of this process, for a quick look without Prometheus.
fn usage(state: &State) -> Response<Body> {
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024);
    let apps: serde_json::Map<String, serde_json::Value> = state
        .adapter
        .local()
        .stats()
        .into_iter()
        .map(|s| {
            (
                s.app_id,
                json!({"connections": s.connections, "channels": s.channels}),
            )
        })
        .collect();
    response::ok(json!({
        "memory": {"rss_bytes": rss},
        "connections": state.adapter.local().connections(),
        "apps": apps,
    }))
}

/// 200 when the node can do its whole job; 503 until the app store's table was first read, and
/// while its cluster store (Redis) is unreachable.
fn ready(state: &State, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return response::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    }
    if state.is_draining() {
        return response::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "error": "shutting down"}),
        );
    }
    if !state.apps_loaded.load(std::sync::atomic::Ordering::Relaxed) {
        return response::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "error": "the apps have not been read from the app store yet"}),
        );
    }
    if state.adapter.cluster().is_none_or(|c| c.healthy()) {
        response::ok(json!({"health": "OK", "ready": true}))
    } else {
        response::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "error": "the cluster store (Redis) is unreachable"}),
        )
    }
}

/// A signed API call: find the app, read the body within its limit, check the signature, then
/// hand over to the endpoint.
async fn api(
    state: &Arc<State>,
    req: Request<Incoming>,
    path: &str,
    app_id: &str,
    rest: &[String],
) -> Result<Response<Body>, ApiError> {
    let apps = state.apps();
    let app = apps
        .by_id(app_id)
        .cloned()
        .ok_or_else(|| ApiError::AppNotFound {
            app_id: app_id.to_string(),
        })?;
    if !app.enabled {
        return Err(ApiError::AppDisabled {
            app_id: app_id.to_string(),
        });
    }
    let method = req.method().clone();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let body = read_body(req, state.config.max_http_body_size).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    auth::verify(&app, method.as_str(), &decode(path), &query, &body, now)
        .map_err(ApiError::Unauthorized)?;
    dispatch(state, &app, &method, rest, &query, &body).await
}

async fn dispatch(
    state: &Arc<State>,
    app: &Arc<App>,
    method: &Method,
    rest: &[String],
    query: &[(String, String)],
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let expect = |m: Method| {
        if *method == m {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed { allowed: m })
        }
    };
    match rest.as_slice() {
        ["events"] => {
            expect(Method::POST)?;
            events::trigger(state, app, body).await
        }
        ["batch_events"] => {
            expect(Method::POST)?;
            events::batch(state, app, body).await
        }
        ["channels"] => {
            expect(Method::GET)?;
            within_limit(state, app, state.api_limits.read(app, Instant::now()))?;
            channels::list(state, app, query).await
        }
        ["channels", name] => {
            expect(Method::GET)?;
            within_limit(state, app, state.api_limits.read(app, Instant::now()))?;
            channels::show(state, app, name, query).await
        }
        ["channels", name, "history"] if *method == Method::DELETE => {
            history::purge(state, app, name).await
        }
        ["channels", name, "history"] => {
            expect(Method::GET)?;
            within_limit(state, app, state.api_limits.read(app, Instant::now()))?;
            history::read(state, app, name, query).await
        }
        ["channels", name, "users"] => {
            expect(Method::GET)?;
            within_limit(state, app, state.api_limits.read(app, Instant::now()))?;
            channels::users(state, app, name).await
        }
        ["users", user_id, "terminate_connections"] => {
            expect(Method::POST)?;
            users::terminate(state, app, user_id).await
        }
        ["connections"] => {
            expect(Method::GET)?;
            within_limit(state, app, state.api_limits.read(app, Instant::now()))?;
            let n = state.adapter.connection_count(app).await;
            Ok(response::ok(json!({"connections": n})))
        }
        _ => Err(ApiError::UnknownEndpoint),
    }
}

/// Turns a rate-limit refusal into 429, counted in `rate_limit_rejections`.
fn within_limit(
    state: &State,
    app: &App,
    taken: Result<(), crate::limits::api::Limited>,
) -> Result<(), ApiError> {
    taken.map_err(|limited| {
        state
            .metrics
            .rate_limit_rejections
            .with_label_values(&[&app.id])
            .inc();
        ApiError::RateLimited(limited)
    })
}

/// Reads the whole body, refusing (413) anything larger than `limit`.
async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::BodyTooLarge { limit };
    if let Some(len) = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large());
        }
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "Could not read the request body: {e}"
        ))),
    }
}
