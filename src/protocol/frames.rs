//! Server → client frames, built once as shared bytes.
//!
//! A `Frame` is a `Utf8Bytes`: cloning it bumps a reference count, so a broadcast is serialized
//! once and every subscriber's queue holds the same allocation.

use serde_json::{json, Value};
pub use tokio_tungstenite::tungstenite::Utf8Bytes as Frame;

use super::socket_id::SocketId;

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Builds `{"event":…,"channel":…,"data":…,"user_id":…}`. `data` and `user_id` are raw JSON
/// text that is copied as is; that is how HTTP-triggered data is forwarded byte for byte.
/// One allocation in the common case: the capacity covers the fixed text and a little escaping.
pub fn envelope(
    event: &str,
    channel: Option<&str>,
    data: Option<&str>,
    user_id: Option<&str>,
) -> Frame {
    let mut out = Vec::with_capacity(
        64 + event.len()
            + channel.map_or(0, str::len)
            + data.map_or(0, str::len)
            + user_id.map_or(0, str::len),
    );
    out.extend_from_slice(b"{\"event\":");
    push_json_str(&mut out, event);
    if let Some(c) = channel {
        out.extend_from_slice(b",\"channel\":");
        push_json_str(&mut out, c);
    }
    if let Some(d) = data {
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(d.as_bytes());
    }
    if let Some(u) = user_id {
        out.extend_from_slice(b",\"user_id\":");
        out.extend_from_slice(u.as_bytes());
    }
    out.push(b'}');
    // Every piece is valid UTF-8 (JSON-escaped strings and raw JSON text from &str).
    match String::from_utf8(out) {
        Ok(text) => Frame::from(text),
        Err(e) => Frame::from(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// A `pusher:`/`pusher_internal:` event whose `data` is the given object encoded as a JSON
/// string ("double encoding"), as the protocol requires.
fn internal(event: &str, channel: Option<&str>, data: &Value) -> Frame {
    let mut encoded = Vec::new();
    push_json_str(&mut encoded, &data.to_string());
    let encoded = String::from_utf8(encoded).unwrap_or_default();
    envelope(event, channel, Some(&encoded), None)
}

/// The first message on every connection.
pub fn connection_established(socket_id: SocketId, activity_timeout: u64) -> Frame {
    internal(
        "pusher:connection_established",
        None,
        &serde_json::json!({"socket_id": socket_id.to_string(), "activity_timeout": activity_timeout}),
    )
}

/// `pusher:error`; its `data` is an object (not a string), with `channel` when it concerns one.
pub fn error(code: u16, message: &str, channel: Option<&str>) -> Frame {
    let data = serde_json::json!({"code": code, "message": message}).to_string();
    envelope("pusher:error", channel, Some(&data), None)
}

/// `pusher:subscription_error`; pusher-js routes it to the channel, so Echo's `.error()` fires.
pub fn subscription_error(channel: &str, kind: &str, error: &str, status: u16) -> Frame {
    let data = serde_json::json!({"type": kind, "error": error, "status": status}).to_string();
    envelope(
        "pusher:subscription_error",
        Some(channel),
        Some(&data),
        None,
    )
}

/// Public and private channels acknowledge a subscription with `"data":"{}"`.
pub fn subscription_succeeded(channel: &str) -> Frame {
    envelope(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        Some("\"{}\""),
        None,
    )
}

/// Presence acknowledgement carrying every member, the subscriber included.
pub fn presence_succeeded(
    channel: &str,
    ids: Vec<Value>,
    hash: serde_json::Map<String, Value>,
) -> Frame {
    let count = hash.len();
    internal(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        &serde_json::json!({"presence": {"ids": ids, "hash": hash, "count": count}}),
    )
}

/// Sent to the other members when a user's first connection joins a presence channel.
pub fn member_added(channel: &str, user_id: &Value, user_info: &Value) -> Frame {
    let mut data = serde_json::Map::new();
    data.insert("user_id".into(), user_id.clone());
    if !user_info.is_null() {
        data.insert("user_info".into(), user_info.clone());
    }
    internal(
        "pusher_internal:member_added",
        Some(channel),
        &Value::Object(data),
    )
}

/// Sent to the remaining members when a user's last connection leaves a presence channel.
pub fn member_removed(channel: &str, user_id: &Value) -> Frame {
    internal(
        "pusher_internal:member_removed",
        Some(channel),
        &serde_json::json!({"user_id": user_id}),
    )
}

/// Server-initiated liveness probe.
pub fn ping() -> Frame {
    envelope("pusher:ping", None, Some("\"{}\""), None)
}

/// Answer to a client's `pusher:ping`.
pub fn pong() -> Frame {
    envelope("pusher:pong", None, Some("\"{}\""), None)
}

/// Successful user sign-in; echoes the signed `user_data` string.
pub fn signin_success(user_data: &str) -> Frame {
    internal(
        "pusher:signin_success",
        None,
        &serde_json::json!({"user_data": user_data}),
    )
}

/// A cache channel has nothing cached: no `data` at all.
pub fn cache_miss(channel: &str) -> Frame {
    envelope("pusher:cache_miss", Some(channel), None, None)
}

/// The live subscription count of a channel (docs/protocol.md §10.2); pusher-js re-emits it
/// as `pusher:subscription_count`.
pub fn subscription_count(channel: &str, count: usize) -> Frame {
    internal(
        "pusher_internal:subscription_count",
        Some(channel),
        &json!({"subscription_count": count}),
    )
}

/// `pusher_internal:watchlist_events` (no channel); pusher-js emits each entry of `events` on
/// `pusher.user.watchlist`. Built by `watchlist::events`.
pub fn watchlist_events(data: &Value) -> Frame {
    internal("pusher_internal:watchlist_events", None, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(f: &Frame) -> Value {
        serde_json::from_str(f.as_str()).expect("frame is JSON")
    }

    #[test]
    fn internal_data_is_a_string() {
        let v = parse(&connection_established(SocketId(1, 2), 120));
        let data: Value = serde_json::from_str(v["data"].as_str().expect("string")).expect("json");
        assert_eq!(data["socket_id"], "1.2");
        assert_eq!(data["activity_timeout"], 120);
    }

    #[test]
    fn error_data_is_an_object() {
        let v = parse(&error(4200, "Invalid message format", Some("c")));
        assert_eq!(v["data"]["code"], 4200);
        assert_eq!(v["channel"], "c");
    }

    #[test]
    fn raw_data_is_copied_verbatim() {
        let f = envelope("e", Some("c"), Some(r#""{\u00e9}""#), Some("12"));
        assert_eq!(
            f.as_str(),
            r#"{"event":"e","channel":"c","data":"{\u00e9}","user_id":12}"#
        );
        assert!(parse(&cache_miss("cache-x")).get("data").is_none());
    }

    #[test]
    fn empty_presence_hash_is_an_object() {
        let v = parse(&presence_succeeded(
            "presence-x",
            vec![],
            serde_json::Map::new(),
        ));
        let data: Value = serde_json::from_str(v["data"].as_str().expect("string")).expect("json");
        assert!(data["presence"]["hash"].is_object());
        assert_eq!(data["presence"]["count"], 0);
    }
}
