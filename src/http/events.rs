//! `POST /events` and `POST /batch_events`: validate everything first, then deliver.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use super::response::{self, ApiError, Body};
use crate::app::App;
use crate::channels::cache::CachedEvent;
use crate::protocol::channel_name::{self, ChannelKind};
use crate::protocol::frames;
use crate::protocol::socket_id::SocketId;
use crate::state::State;

/// One event as sent by a server SDK. Fields are loosely typed here so that a wrong type gets
/// a precise 400 instead of a generic parse error.
#[derive(Deserialize)]
struct EventIn {
    name: Option<Value>,
    data: Option<Box<RawValue>>,
    channel: Option<Value>,
    channels: Option<Value>,
    socket_id: Option<Value>,
    info: Option<Value>,
}

#[derive(Deserialize)]
struct BatchIn {
    batch: Option<Vec<EventIn>>,
}

/// A validated event, ready to deliver.
struct Trigger {
    name: String,
    /// The `data` as a JSON string literal, copied byte for byte into every frame.
    data: String,
    channels: Vec<String>,
    except: Option<SocketId>,
    info: Info,
}

/// Which attributes the caller asked for with `info`.
#[derive(Default, Clone, Copy)]
struct Info {
    user_count: bool,
    subscription_count: bool,
}

impl Info {
    fn any(&self) -> bool {
        self.user_count || self.subscription_count
    }
}

pub async fn trigger(
    state: &Arc<State>,
    app: &Arc<App>,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let event: EventIn = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("Body is not a valid event JSON object: {e}"))
    })?;
    let t = validate(app, event, false)?;
    state.api_limits.events(state, app, 1)?;
    deliver(state, app, &t).await;
    if !t.info.any() {
        return Ok(response::ok(json!({})));
    }
    let mut channels = Map::new();
    for ch in &t.channels {
        channels.insert(ch.clone(), attributes(state, app, ch, t.info).await);
    }
    Ok(response::ok(json!({ "channels": channels })))
}

pub async fn batch(
    state: &Arc<State>,
    app: &Arc<App>,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let input: BatchIn = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("Body is not a valid batch JSON object: {e}"))
    })?;
    let items = input
        .batch
        .ok_or_else(|| ApiError::bad_request("Missing batch: expected {\"batch\":[…]}"))?;
    if app.max_event_batch_size != 0 && items.len() > app.max_event_batch_size {
        return Err(ApiError::bad_request(format!(
            "Batch too large: {} events; the limit is {}",
            items.len(),
            app.max_event_batch_size
        )));
    }
    let mut triggers = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let t = validate(app, item, true)
            .map_err(|ApiError(status, msg)| ApiError(status, format!("batch[{i}]: {msg}")))?;
        triggers.push(t);
    }
    state.api_limits.events(state, app, triggers.len() as u32)?;
    for t in &triggers {
        deliver(state, app, t).await;
    }
    if !triggers.iter().any(|t| t.info.any()) {
        return Ok(response::ok(json!({})));
    }
    let mut out = Vec::with_capacity(triggers.len());
    for t in &triggers {
        match (t.info.any(), t.channels.first()) {
            (true, Some(ch)) => out.push(attributes(state, app, ch, t.info).await),
            _ => out.push(json!({})),
        }
    }
    Ok(response::ok(json!({ "batch": out })))
}

fn validate(app: &App, e: EventIn, single_channel: bool) -> Result<Trigger, ApiError> {
    let name = match e.name {
        Some(Value::String(s)) => s,
        Some(_) => return Err(ApiError::bad_request("name must be a string")),
        None => {
            return Err(ApiError::bad_request(
                "Missing name: the event name is required",
            ))
        }
    };
    if name.is_empty() {
        return Err(ApiError::bad_request("name must not be empty"));
    }
    let name_len = name.chars().count();
    if name_len > app.max_event_name_length {
        return Err(ApiError::bad_request(format!(
            "Event name too long: {name_len} characters; the limit is {}",
            app.max_event_name_length
        )));
    }
    let raw = e
        .data
        .ok_or_else(|| ApiError::bad_request("Missing data: the event data is required"))?;
    let (data, data_len) = encode_data(&raw)?;
    if app.max_event_payload_size != 0 && data_len > app.max_event_payload_size {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Event data too large: {data_len} bytes; the limit is {} bytes",
                app.max_event_payload_size
            ),
        ));
    }
    let channels = channels_of(e.channel, e.channels, single_channel)?;
    if app.max_event_channels != 0 && channels.len() > app.max_event_channels {
        return Err(ApiError::bad_request(format!(
            "Too many channels: {}; the limit is {}",
            channels.len(),
            app.max_event_channels
        )));
    }
    for ch in &channels {
        channel_name::validate(ch, app.max_channel_name_length)
            .map_err(|err| ApiError::bad_request(format!("Invalid channel {ch:?}: {err}")))?;
    }
    // An unknown or malformed socket_id excludes nobody (and is not an error).
    let except = match e.socket_id {
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let info = parse_info(e.info)?;
    Ok(Trigger {
        name,
        data,
        channels,
        except,
        info,
    })
}

/// The data as a JSON string literal and its decoded length. A string is kept byte for byte;
/// any other JSON value is accepted as its JSON text (as Soketi does), encoded into a string.
fn encode_data(raw: &RawValue) -> Result<(String, usize), ApiError> {
    let text = raw.get();
    if text.starts_with('"') {
        let decoded: String = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("data is not a valid JSON string: {e}")))?;
        Ok((text.to_string(), decoded.len()))
    } else {
        let encoded = serde_json::to_string(text)
            .map_err(|e| ApiError::bad_request(format!("data cannot be encoded: {e}")))?;
        Ok((encoded, text.len()))
    }
}

fn channels_of(
    channel: Option<Value>,
    channels: Option<Value>,
    single: bool,
) -> Result<Vec<String>, ApiError> {
    match (channel, channels) {
        (Some(Value::String(c)), None) => Ok(vec![c]),
        (Some(_), None) => Err(ApiError::bad_request("channel must be a string")),
        (None, Some(Value::Array(list))) if !single || list.len() == 1 => {
            let mut out = Vec::with_capacity(list.len());
            for v in list {
                match v {
                    Value::String(s) => out.push(s),
                    _ => {
                        return Err(ApiError::bad_request(
                            "channels must be an array of strings",
                        ))
                    }
                }
            }
            if out.is_empty() {
                return Err(ApiError::bad_request("channels must not be empty"));
            }
            Ok(out)
        }
        (None, Some(Value::Array(_))) => Err(ApiError::bad_request(
            "a batch event names exactly one channel (use channel)",
        )),
        (None, Some(_)) => Err(ApiError::bad_request(
            "channels must be an array of strings",
        )),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give either channel or channels, not both",
        )),
        (None, None) => Err(ApiError::bad_request("Missing channel or channels")),
    }
}

fn parse_info(info: Option<Value>) -> Result<Info, ApiError> {
    let text = match info {
        None | Some(Value::Null) => return Ok(Info::default()),
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(ApiError::bad_request(
                "info must be a comma-separated string",
            ))
        }
    };
    let mut out = Info::default();
    for attr in text.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match attr {
            "user_count" => out.user_count = true,
            "subscription_count" => out.subscription_count = true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "info: unknown attribute {other:?} (use user_count, subscription_count)"
                )))
            }
        }
    }
    Ok(out)
}

/// Builds each channel's frame once and hands it to the adapter; cache channels keep it.
async fn deliver(state: &Arc<State>, app: &Arc<App>, t: &Trigger) {
    for ch in &t.channels {
        let frame = frames::envelope(&t.name, Some(ch), Some(&t.data), None);
        if ChannelKind::of(ch).cache {
            state
                .adapter
                .set_cache(app, ch, CachedEvent::new(frame.clone(), t.data.clone()))
                .await;
        }
        let timer = state.metrics.broadcast_seconds.start_timer();
        state.adapter.broadcast(app, ch, frame, t.except).await;
        timer.observe_duration();
    }
}

/// The requested attributes of one channel; `user_count` only for presence channels.
async fn attributes(state: &Arc<State>, app: &Arc<App>, channel: &str, info: Info) -> Value {
    let stats = state.adapter.channel_stats(app, channel).await;
    let mut attrs = Map::new();
    if info.subscription_count {
        attrs.insert("subscription_count".into(), json!(stats.subscription_count));
    }
    if info.user_count && ChannelKind::of(channel).presence {
        attrs.insert("user_count".into(), json!(stats.user_count));
    }
    Value::Object(attrs)
}
