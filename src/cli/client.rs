//! The command-line client: `clarion trigger`, `clarion channels`, `clarion channel NAME`,
//! `clarion users NAME`. Each builds one signed HTTP API request (the same signing the server
//! checks), prints the server's answer, and fails with the server's own message.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Args;
use serde_json::{json, Value};

use crate::protocol::signature;

/// Where the server is and which app to act as; read from the environment like the server.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Base URL of the server (http:// or https://, with the path prefix if one is set).
    #[arg(long, env = "CLARION_URL", default_value = "http://127.0.0.1:6001")]
    pub url: String,
    /// App id.
    #[arg(long = "app-id", env = "CLARION_APP_ID")]
    pub app_id: String,
    /// App key.
    #[arg(long, env = "CLARION_APP_KEY")]
    pub key: String,
    /// App secret (signs the request; never sent).
    #[arg(long, env = "CLARION_APP_SECRET", hide_env_values = true)]
    pub secret: String,
}

/// `clarion trigger`.
#[derive(Args, Debug, Clone)]
pub struct Trigger {
    #[command(flatten)]
    pub target: Target,
    /// Channel to trigger on (repeatable).
    #[arg(long)]
    pub channel: Vec<String>,
    /// Several channels, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub channels: Vec<String>,
    /// Event name.
    #[arg(long, required_unless_present = "batch")]
    pub event: Option<String>,
    /// Event data, sent as the `data` string (usually JSON).
    #[arg(long, default_value = "{}")]
    pub data: String,
    /// Exclude this connection from delivery (`toOthers()`).
    #[arg(long)]
    pub socket_id: Option<String>,
    /// Send a batch instead: a JSON file with an array of events or `{"batch":[…]}`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["event", "channel", "channels"])]
    pub batch: Option<PathBuf>,
}

/// `clarion channels`.
#[derive(Args, Debug, Clone)]
pub struct Channels {
    #[command(flatten)]
    pub target: Target,
    /// Only channels whose name starts with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Attributes to ask for, e.g. `user_count,subscription_count`.
    #[arg(long)]
    pub info: Option<String>,
}

/// `clarion channel NAME` and `clarion users NAME`.
#[derive(Args, Debug, Clone)]
pub struct OneChannel {
    #[command(flatten)]
    pub target: Target,
    /// The channel.
    pub name: String,
    /// Attributes to ask for (`channel` only), e.g. `subscription_count,user_count,cache`.
    #[arg(long)]
    pub info: Option<String>,
}

/// `clarion history NAME`.
#[derive(Args, Debug, Clone)]
pub struct History {
    #[command(flatten)]
    pub target: Target,
    /// The recorded channel.
    pub name: String,
    /// Only events after this offset.
    #[arg(long)]
    pub after: Option<u64>,
    /// At most this many events (0: only the position).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Only events of this epoch.
    #[arg(long)]
    pub epoch: Option<String>,
    /// Forget the channel's history instead (a new epoch starts).
    #[arg(long, conflicts_with_all = ["after", "limit", "epoch"])]
    pub purge: bool,
}

/// The outcome of a command: what to print and whether it succeeded.
pub struct Answer {
    pub ok: bool,
    pub text: String,
}

pub async fn trigger(t: &Trigger) -> Answer {
    let (path, body) = match &t.batch {
        Some(file) => match batch_body(file) {
            Ok(body) => (format!("/apps/{}/batch_events", t.target.app_id), body),
            Err(e) => return Answer { ok: false, text: e },
        },
        None => {
            let mut channels = t.channel.clone();
            channels.extend(t.channels.iter().filter(|c| !c.is_empty()).cloned());
            if channels.is_empty() {
                return Answer {
                    ok: false,
                    text: "give --channel (repeatable) or --channels a,b".into(),
                };
            }
            let mut body = json!({"name": t.event.clone().unwrap_or_default(), "channels": channels, "data": t.data});
            if let (Some(s), Some(fields)) = (&t.socket_id, body.as_object_mut()) {
                fields.insert("socket_id".into(), Value::String(s.clone()));
            }
            (
                format!("/apps/{}/events", t.target.app_id),
                body.to_string(),
            )
        }
    };
    call(&t.target, "POST", &path, &[], body).await
}

pub async fn channels(c: &Channels) -> Answer {
    let mut query = Vec::new();
    if let Some(p) = &c.prefix {
        query.push(("filter_by_prefix".to_string(), p.clone()));
    }
    if let Some(i) = &c.info {
        query.push(("info".to_string(), i.clone()));
    }
    call(
        &c.target,
        "GET",
        &format!("/apps/{}/channels", c.target.app_id),
        &query,
        String::new(),
    )
    .await
}

pub async fn channel(c: &OneChannel) -> Answer {
    let query: Vec<(String, String)> = c
        .info
        .iter()
        .map(|i| ("info".to_string(), i.clone()))
        .collect();
    let path = format!("/apps/{}/channels/{}", c.target.app_id, encode(&c.name));
    call(&c.target, "GET", &path, &query, String::new()).await
}

pub async fn users(c: &OneChannel) -> Answer {
    let path = format!(
        "/apps/{}/channels/{}/users",
        c.target.app_id,
        encode(&c.name)
    );
    call(&c.target, "GET", &path, &[], String::new()).await
}

pub async fn history(h: &History) -> Answer {
    let path = format!(
        "/apps/{}/channels/{}/history",
        h.target.app_id,
        encode(&h.name)
    );
    if h.purge {
        return call(&h.target, "DELETE", &path, &[], String::new()).await;
    }
    let mut query = Vec::new();
    if let Some(a) = h.after {
        query.push(("after".to_string(), a.to_string()));
    }
    if let Some(l) = h.limit {
        query.push(("limit".to_string(), l.to_string()));
    }
    if let Some(e) = &h.epoch {
        query.push(("epoch".to_string(), e.clone()));
    }
    call(&h.target, "GET", &path, &query, String::new()).await
}

/// A batch file: an array of events, or the whole `{"batch":[…]}` body.
fn batch_body(file: &PathBuf) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    Ok(match v {
        Value::Array(items) => json!({ "batch": items }).to_string(),
        other => other.to_string(),
    })
}

/// Percent-encodes a path segment (`#server-to-user-1` must not become a fragment).
fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Signs and sends one request. The signed path is the API path without the URL's own prefix,
/// as the server verifies it.
async fn call(
    t: &Target,
    method: &str,
    path: &str,
    extra: &[(String, String)],
    body: String,
) -> Answer {
    let base = t.url.trim_end_matches('/');
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let decoded_path = crate::protocol::query::decode(path);
    let query = signature::signed_query(
        &t.key,
        &t.secret,
        method,
        &decoded_path,
        body.as_bytes(),
        extra,
        ts,
    );
    let url = format!("{base}{path}?{query}");
    let uri: hyper::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            return Answer {
                ok: false,
                text: format!("invalid --url {:?}: {e}", t.url),
            }
        }
    };
    let headers = vec![("content-type".to_string(), "application/json".to_string())];
    match crate::net::http_client::request(
        method,
        &uri,
        &headers,
        Bytes::from(body),
        Duration::from_secs(10),
    )
    .await
    {
        Ok((200, answer)) => Answer {
            ok: true,
            text: String::from_utf8_lossy(&answer).into_owned(),
        },
        Ok((status, answer)) => {
            let raw = String::from_utf8_lossy(&answer).into_owned();
            let message = serde_json::from_str::<Value>(&raw)
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_string))
                .unwrap_or(raw);
            Answer {
                ok: false,
                text: format!("the server answered {status}: {message}"),
            }
        }
        Err(e) => Answer {
            ok: false,
            text: format!("no answer from {}: {e}", t.url),
        },
    }
}
