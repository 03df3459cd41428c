//! `POST /events` and `POST /batch_events`: validate everything first, then deliver.

use std::sync::Arc;
use std::time::Instant;

use hyper::Response;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

pub use super::info::Info;
use super::response::{self, ApiError, Body};
use crate::app::App;
use crate::channels::cache::CachedEvent;
use crate::protocol::channel_name::{self, ChannelKind};
use crate::protocol::event::{self, LimitError};
use crate::protocol::frames;
use crate::protocol::inbound::is_object_text;
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

/// The items stay raw until each is checked to be an object (see `inbound::is_object_text`).
#[derive(Deserialize)]
struct BatchIn<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a RawValue>>,
}

/// A validated event, ready to deliver. Public (with `parse_trigger_body` and
/// `parse_batch_body`) so the fuzzer can check what validation lets through.
#[derive(Debug)]
pub struct Trigger {
    pub name: String,
    /// The `data` as a JSON string literal, copied byte for byte into every frame.
    pub data: String,
    pub channels: Vec<String>,
    pub except: Option<SocketId>,
    pub info: Info,
}

pub async fn trigger(
    state: &Arc<State>,
    app: &Arc<App>,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let t = parse_trigger_body(app, body)?;
    super::within_limit(state, app, state.api_limits.events(app, 1, Instant::now()))?;
    deliver(state, app, &t).await?;
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
    let triggers = parse_batch_body(app, body)?;
    super::within_limit(
        state,
        app,
        state
            .api_limits
            .events(app, triggers.len() as u32, Instant::now()),
    )?;
    for t in &triggers {
        deliver(state, app, t).await?;
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

/// Parses and validates the body of `POST /events`: everything that can make the request a 4xx
/// happens here, before anything is delivered.
pub fn parse_trigger_body(app: &App, body: &[u8]) -> Result<Trigger, ApiError> {
    let body = json_text(body, "event")?;
    let event: EventIn = serde_json::from_str(body).map_err(|e| {
        ApiError::bad_request(format!("Body is not a valid event JSON object: {e}"))
    })?;
    validate(app, event, false)
}

/// Parses and validates the body of `POST /batch_events`; one bad item refuses the whole batch
/// (its index is in the message), so a batch is delivered entirely or not at all.
pub fn parse_batch_body(app: &App, body: &[u8]) -> Result<Vec<Trigger>, ApiError> {
    let body = json_text(body, "batch")?;
    let input: BatchIn = serde_json::from_str(body).map_err(|e| {
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
        if !is_object_text(item.get()) {
            return Err(ApiError::bad_request(format!(
                "batch[{i}]: an event must be a JSON object"
            )));
        }
        let item: EventIn = serde_json::from_str(item.get()).map_err(|e| {
            ApiError::bad_request(format!("batch[{i}]: not a valid event JSON object: {e}"))
        })?;
        let t = validate(app, item, true).map_err(|e| e.in_batch(i))?;
        triggers.push(t);
    }
    Ok(triggers)
}

/// The body as the text of a JSON object, or the 400 that says why not. UTF-8 is checked here
/// because serde_json skips the strings of ignored fields without checking them, so invalid
/// bytes there would otherwise pass; JSON is UTF-8 (RFC 8259 §8.1).
fn json_text<'a>(body: &'a [u8], what: &str) -> Result<&'a str, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(format!(
            "Body is not a valid {what} JSON object: it is not UTF-8 ({e})"
        ))
    })?;
    if !is_object_text(text) {
        return Err(ApiError::bad_request(format!(
            "Body is not a valid {what} JSON object: expected a JSON object"
        )));
    }
    Ok(text)
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
    let size = e.data.as_ref().map_or(0, |raw| event::data_size(raw.get()));
    event::check(&name, size, app.event_limits()).map_err(|e| match e {
        LimitError::NameTooLong { length, limit } => ApiError::bad_request(format!(
            "Event name too long: {length} characters; the limit is {limit}"
        )),
        LimitError::DataTooLarge { size, limit } => ApiError::EventTooLarge { size, limit },
    })?;
    let raw = e
        .data
        .ok_or_else(|| ApiError::bad_request("Missing data: the event data is required"))?;
    let data = encode_data(&raw)?;
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

/// The data as a JSON string literal. A string is kept byte for byte; any other JSON value is
/// accepted as its JSON text (as Soketi does), encoded into a string.
fn encode_data(raw: &RawValue) -> Result<String, ApiError> {
    let text = raw.get();
    if text.starts_with('"') {
        // Valid JSON (it parsed as a RawValue), so a valid string literal.
        Ok(text.to_string())
    } else {
        serde_json::to_string(text)
            .map_err(|e| ApiError::bad_request(format!("data cannot be encoded: {e}")))
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

/// The `info` of an event body: a comma-separated string, or absent.
fn parse_info(info: Option<Value>) -> Result<Info, ApiError> {
    match info {
        None | Some(Value::Null) => Ok(Info::default()),
        Some(Value::String(s)) => Info::parse(&s, false).map_err(ApiError::bad_request),
        Some(_) => Err(ApiError::bad_request(
            "info must be a comma-separated string",
        )),
    }
}

/// Builds each channel's frame once and hands it to the adapter; cache channels keep it, and
/// recorded channels go through their history (docs/recovery.md). History that cannot be
/// written refuses the event with 503 under `on_history_error = "reject"`, or delivers it
/// unstamped under `"deliver"`.
async fn deliver(state: &Arc<State>, app: &Arc<App>, t: &Trigger) -> Result<(), ApiError> {
    for ch in &t.channels {
        let frame = frames::envelope(&t.name, Some(ch), Some(&t.data), None);
        if ChannelKind::of(ch).cache {
            state
                .adapter
                .set_cache(app, ch, CachedEvent::new(frame.clone(), t.data.clone()))
                .await;
        }
        let timer = state.metrics.broadcast_seconds.start_timer();
        match app.recording_for(ch) {
            None => state.adapter.broadcast(app, ch, frame, t.except).await,
            Some(rec) => state
                .publish_recorded(app, ch, frame, t.except, rec, app.on_history_error)
                .await
                .map_err(|_| ApiError::HistoryUnavailable {
                    channel: ch.clone(),
                })?,
        }
        timer.observe_duration();
    }
    Ok(())
}

/// The requested attributes of one channel; `user_count` only for presence channels.
async fn attributes(state: &Arc<State>, app: &Arc<App>, channel: &str, info: Info) -> Value {
    let stats = state.adapter.channel_stats(app, channel).await;
    let mut attrs = Map::new();
    info.write_counts(channel, stats, &mut attrs);
    Value::Object(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App {
            id: "3".into(),
            key: "k".into(),
            secret: "s".into(),
            ..App::default()
        }
    }

    #[test]
    fn parses_a_trigger_and_a_batch() {
        let t = parse_trigger_body(
            &app(),
            br#"{"name":"e","channels":["a","presence-b"],"data":{"x":1},"socket_id":"1.2","info":"user_count"}"#,
        )
        .expect("valid");
        assert_eq!(t.name, "e");
        assert_eq!(t.data, r#""{\"x\":1}""#);
        assert_eq!(t.channels, ["a", "presence-b"]);
        assert_eq!(t.except, Some(SocketId(1, 2)));
        assert!(t.info.user_count && !t.info.subscription_count);
        let b = parse_batch_body(
            &app(),
            br#" {"batch":[{"name":"a","channel":"c","data":"\"q\""},{"name":"b","channels":["d"],"data":"1"}]}"#,
        )
        .expect("valid");
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].data, r#""\"q\"""#);
        assert_eq!(b[1].channels, ["d"]);
    }

    /// Same class as `inbound::tests::arrays_are_not_messages` (found by the `inbound_frame`
    /// fuzz target): derived structs would take an array's items as the fields by position.
    #[test]
    fn arrays_are_not_events() {
        let e = parse_trigger_body(&app(), br#"["e","\"d\"","c"]"#).expect_err("array");
        assert!(e.to_string().contains("expected a JSON object"), "{e}");
        let e = parse_batch_body(&app(), br#"[["e","\"d\"","c"]]"#).expect_err("array");
        assert!(e.to_string().contains("expected a JSON object"), "{e}");
        let e = parse_batch_body(&app(), br#"{"batch":[["e","\"d\"","c"]]}"#).expect_err("item");
        assert_eq!(e.to_string(), "batch[0]: an event must be a JSON object");
        let e = parse_batch_body(&app(), br#"{"batch":[5]}"#).expect_err("item");
        assert_eq!(e.to_string(), "batch[0]: an event must be a JSON object");
    }

    /// Found by the `http_api` fuzz target: an invalid UTF-8 byte inside the string of an
    /// unknown (ignored) field was accepted, since serde_json does not check skipped strings.
    #[test]
    fn bodies_must_be_utf8() {
        let body = b"{\"name\":\"my-event\",\"channel\":\"presence-room\",\"data\":\"{}\",\"namd\":\"user_count,sub\x89script\"}";
        let e = parse_trigger_body(&app(), body).expect_err("not UTF-8");
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        let body = b"{\"batch\":[],\"x\":\"\xff\"}";
        let e = parse_batch_body(&app(), body).expect_err("not UTF-8");
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
