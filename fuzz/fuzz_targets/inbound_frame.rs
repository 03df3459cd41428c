//! Fuzzes the inbound WebSocket message decoder, `clarion::protocol::inbound::parse`, which is
//! the first code to touch every text frame a client sends.
//!
//! The input is taken as UTF-8 (invalid bytes are replaced, as a lossy conversion would), so
//! every run is a text frame a client could have sent. Beyond "does not panic" it asserts:
//! - an error's text starts with `Invalid message format`, and the `pusher:error` frame that
//!   carries it back to the client is valid JSON;
//! - the decoded command agrees with the frame's `event` (a `pusher:ping` is `Ping`, a client
//!   event is never named `pusher:*` or `pusher_internal:*`);
//! - the frame the server would broadcast for a client event (`frames::envelope`) is a valid
//!   JSON object with the same event and channel and the client's `data` copied byte for byte —
//!   a client must never be able to make the server send broken JSON to others;
//! - the subscription error a subscribe may be answered with is valid JSON naming the channel.

#![no_main]

use clarion::protocol::frames;
use clarion::protocol::inbound::{parse, Inbound};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    check(&text);
});

fn check(text: &str) {
    let parsed = parse(text);
    // Whatever parsed must have been a JSON object with a string `event`.
    let event = members(text).and_then(|m| string(m.get("event")?.as_ref()));
    match parsed {
        Err(e) => {
            assert!(e.0.starts_with("Invalid message format"), "{e:?}");
            let frame = frames::error(4200, &e.0, None);
            let v: Value = serde_json::from_str(frame.as_str()).expect("pusher:error is JSON");
            assert_eq!(v["data"]["message"], Value::String(e.0.clone()));
        }
        Ok(Inbound::Ping) => assert_eq!(event.as_deref(), Some("pusher:ping")),
        Ok(Inbound::Pong) => assert_eq!(event.as_deref(), Some("pusher:pong")),
        Ok(Inbound::Subscribe(s)) => {
            assert_eq!(event.as_deref(), Some("pusher:subscribe"));
            let frame = frames::subscription_error(&s.channel, "AuthError", "refused", 4009);
            let m = members(frame.as_str()).expect("subscription_error is JSON");
            assert_eq!(m.get("channel").and_then(|r| string(r)), Some(s.channel));
        }
        Ok(Inbound::Unsubscribe { .. }) => {
            assert_eq!(event.as_deref(), Some("pusher:unsubscribe"))
        }
        Ok(Inbound::Signin { .. }) => assert_eq!(event.as_deref(), Some("pusher:signin")),
        Ok(Inbound::ClientEvent {
            event: name,
            channel,
            data,
        }) => {
            assert_eq!(event.as_deref(), Some(name.as_str()));
            assert!(!name.starts_with("pusher:"), "{name:?}");
            assert!(!name.starts_with("pusher_internal:"), "{name:?}");
            // What client_event.rs broadcasts, with a presence user_id attached.
            let frame = frames::envelope(
                &name,
                channel.as_deref(),
                data.as_ref().map(|d| d.get()),
                Some("\"u1\""),
            );
            let Some(m) = members(frame.as_str()) else {
                panic!("the broadcast frame is not a JSON object: {frame:?}");
            };
            assert_eq!(m.get("event").and_then(|r| string(r)), Some(name));
            assert_eq!(m.get("channel").and_then(|r| string(r)), channel);
            assert_eq!(
                m.get("data").map(|d| d.get()),
                data.as_ref().map(|d| d.get()),
                "data is not forwarded byte for byte"
            );
            assert_eq!(m.get("user_id").map(|d| d.get()), Some("\"u1\""));
        }
    }
}

/// The members of a JSON object, raw. Syntax is checked but not number ranges: `1e400` is
/// valid JSON that the server forwards without reading it.
fn members(text: &str) -> Option<BTreeMap<String, Box<RawValue>>> {
    serde_json::from_str(text).ok()
}

fn string(raw: &RawValue) -> Option<String> {
    serde_json::from_str(raw.get()).ok()
}
