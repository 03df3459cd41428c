//! The admin API on its own port (`admin_port`, never the public one), behind a bearer token
//! (`admin_token`): list, create, update, enable and disable apps, rotate a secret with a grace
//! period (docs/admin-api.md). Writes go through the app store's table, then the node reads it
//! at once; with `app_store = "file"` the apps belong to the config file and writes are refused.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::dashboard::{self, History};
use super::response::{self, Body};
use crate::app::App;
use crate::app_store::WriteError;
use crate::protocol::signature;
use crate::state::State;

/// Largest request body the admin API reads.
const MAX_BODY: usize = 64 * 1024;
/// Grace of a rotated secret unless the request says otherwise, and the most it may say.
const DEFAULT_GRACE: u64 = 3600;
const MAX_GRACE: u64 = 7 * 24 * 3600;

/// Serves the admin API and the dashboard until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) {
    let history = Arc::new(History::default());
    history.spawn_sampler(Arc::downgrade(&state));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (state, history) = (state.clone(), history.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (state, history) = (state.clone(), history.clone());
                async move { Ok::<_, std::convert::Infallible>(handle(&state, &history, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Whether the request carries the token, compared in constant time (both sides are keyed
/// into an HMAC, whose check is constant-time).
fn authorized(state: &State, req: &Request<Incoming>) -> bool {
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let probe = signature::sign(given, "clarion-admin");
    signature::verify_hex(&state.config.admin_token, &[b"clarion-admin"], &probe)
}

async fn handle(state: &State, history: &History, req: Request<Incoming>) -> Response<Body> {
    // The page holds no data: it asks for the token and sends it with every call.
    if req.method() == Method::GET && matches!(req.uri().path(), "/" | "/dashboard") {
        let mut r = Response::new(Body::from(dashboard::PAGE));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return r;
    }
    if !authorized(state, &req) {
        return response::error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: send Authorization: Bearer <admin_token>",
        );
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let body = match read(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match (&method, segments.as_slice()) {
        (&Method::GET, ["stats"]) => response::ok(dashboard::stats(state, history)),
        (&Method::GET, ["apps"]) => {
            let mut apps: Vec<Value> = state.apps().iter().map(|a| shown(a)).collect();
            apps.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            response::ok(json!({ "apps": apps }))
        }
        (&Method::GET, ["apps", id]) => match state.apps().by_id(id) {
            Some(app) => response::ok(shown(app)),
            None => not_found(id),
        },
        (&Method::POST, ["apps"]) => create(state, &body).await,
        (&Method::PATCH, ["apps", id]) => change(state, id, |app| merge(app, &body)).await,
        (&Method::POST, ["apps", id, "enable"]) => {
            change(state, id, |app| {
                Ok(App {
                    enabled: true,
                    ..app.clone()
                })
            })
            .await
        }
        (&Method::POST, ["apps", id, "disable"]) => {
            change(state, id, |app| {
                Ok(App {
                    enabled: false,
                    ..app.clone()
                })
            })
            .await
        }
        (&Method::POST, ["apps", id, "rotate-secret"]) => rotate(state, id, &body).await,
        (_, ["apps", ..]) => response::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
        _ => response::error(
            StatusCode::NOT_FOUND,
            "Not found: the admin API serves /apps and /stats, the dashboard /",
        ),
    }
}

async fn read(req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| {
            response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY} bytes or could not be read"),
            )
        })
}

/// An app as the admin API shows it: its settings, secret included (the token holder manages
/// it), and when a previous secret stays valid until.
fn shown(app: &App) -> Value {
    let mut v = serde_json::to_value(app).unwrap_or_else(|_| json!({}));
    if let (Some(obj), Some((_, until))) = (v.as_object_mut(), &app.previous_secret) {
        obj.insert("previous_secret_valid_until".into(), json!(until));
    }
    v
}

fn not_found(id: &str) -> Response<Body> {
    response::error(StatusCode::NOT_FOUND, format!("no app with id {id:?}"))
}

fn store_refusal(e: WriteError) -> Response<Body> {
    match e {
        WriteError::Invalid(m) => response::error(StatusCode::BAD_REQUEST, m),
        WriteError::Conflict(m) => response::error(StatusCode::CONFLICT, m),
        WriteError::NotFound => response::error(StatusCode::NOT_FOUND, "no such app in the table"),
        WriteError::Unavailable(m) => response::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the app store cannot be reached: {m}"),
        ),
    }
}

/// The answer to a write when the apps belong to the config file.
fn file_store() -> Response<Body> {
    response::error(
        StatusCode::CONFLICT,
        "app_store = \"file\": the apps are the [[apps]] tables of the config file (change it and send SIGHUP); use a database app store to manage apps here",
    )
}

/// A random secret: 32 hex characters.
fn new_secret() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// Tells the other nodes (PostgreSQL NOTIFY), reads the table again now and applies it, so this
/// node serves the change before it answers; the poller is woken too (it finds nothing new).
async fn reread(state: &State) {
    if let Some(store) = &state.app_store {
        store.announce().await;
        state.adapter.apps_changed().await;
        match store
            .load()
            .await
            .map(|s| crate::app::AppRegistry::new(s.apps))
        {
            Ok(Ok(apps)) => state.apply_apps(apps),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "admin API: the table's apps do not fit together")
            }
            Err(e) => tracing::warn!(error = %e, "admin API: cannot read the app store back"),
        }
    }
    state.app_store_kick.notify_one();
}

async fn create(state: &State, body: &[u8]) -> Response<Body> {
    let Some(store) = state.app_store.as_deref() else {
        return file_store();
    };
    let mut given: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return response::error(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON object (an app)",
            )
        }
    };
    if let Some(obj) = given.as_object_mut() {
        obj.entry("secret").or_insert_with(|| json!(new_secret()));
    }
    let app: App = match serde_json::from_value(given) {
        Ok(a) => a,
        Err(e) => return response::error(StatusCode::BAD_REQUEST, format!("app: {e}")),
    };
    if state.apps().by_id(&app.id).is_some() || state.apps().by_key(&app.key).is_some() {
        return response::error(StatusCode::CONFLICT, "another app has this id or key");
    }
    match store.insert(&app).await {
        Ok(()) => {
            reread(state).await;
            response::json(StatusCode::CREATED, &shown(&app))
        }
        Err(e) => store_refusal(e),
    }
}

/// The app with the fields of `body` (a JSON object) set on it; `id` cannot change.
fn merge(app: &App, body: &[u8]) -> Result<App, String> {
    let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(body) else {
        return Err("the body must be a JSON object of the fields to change".into());
    };
    if changes
        .get("id")
        .is_some_and(|v| v.as_str() != Some(&app.id))
    {
        return Err("app.id: cannot be changed".into());
    }
    let mut v = serde_json::to_value(app).map_err(|e| e.to_string())?;
    if let Some(obj) = v.as_object_mut() {
        obj.extend(changes);
    }
    let mut changed: App = serde_json::from_value(v).map_err(|e| format!("app: {e}"))?;
    changed.previous_secret = app.previous_secret.clone();
    Ok(changed)
}

async fn change(
    state: &State,
    id: &str,
    edit: impl FnOnce(&App) -> Result<App, String>,
) -> Response<Body> {
    let Some(store) = state.app_store.as_deref() else {
        return file_store();
    };
    let Some(current) = state.apps().by_id(id).cloned() else {
        return not_found(id);
    };
    let app = match edit(&current) {
        Ok(a) => a,
        Err(m) => return response::error(StatusCode::BAD_REQUEST, m),
    };
    if app.key != current.key && state.apps().by_key(&app.key).is_some() {
        return response::error(StatusCode::CONFLICT, "another app has this key");
    }
    match store.update(&app).await {
        Ok(()) => {
            reread(state).await;
            response::ok(shown(&app))
        }
        Err(e) => store_refusal(e),
    }
}

async fn rotate(state: &State, id: &str, body: &[u8]) -> Response<Body> {
    let Some(store) = state.app_store.as_deref() else {
        return file_store();
    };
    let Some(current) = state.apps().by_id(id).cloned() else {
        return not_found(id);
    };
    let grace = if body.is_empty() {
        DEFAULT_GRACE
    } else {
        match serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("grace_seconds").cloned())
        {
            None => DEFAULT_GRACE,
            Some(g) => match g.as_u64() {
                Some(g) if g <= MAX_GRACE => g,
                _ => {
                    return response::error(
                        StatusCode::BAD_REQUEST,
                        format!("grace_seconds: a whole number of seconds up to {MAX_GRACE}"),
                    )
                }
            },
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secret = new_secret();
    match store
        .rotate(id, &secret, &current.secret, now + grace)
        .await
    {
        Ok(()) => {
            reread(state).await;
            response::ok(json!({
                "id": id,
                "secret": secret,
                "previous_secret_valid_until": now + grace,
            }))
        }
        Err(e) => store_refusal(e),
    }
}
