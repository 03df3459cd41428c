//! Client → server messages: parse a text frame into one typed command, or say why not.
//!
//! This is the first thing that touches client bytes, so it never panics: every shape problem
//! becomes an `InboundError` that the connection answers with a non-fatal 4200.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One decoded client message.
#[derive(Debug)]
pub enum Inbound {
    Ping,
    Pong,
    Subscribe(Subscribe),
    Unsubscribe {
        channel: String,
    },
    Signin {
        auth: String,
        user_data: String,
    },
    /// Any event that is not `pusher:*`; the client-event rules decide what happens to it.
    ClientEvent {
        event: String,
        channel: Option<String>,
        data: Option<Box<RawValue>>,
    },
}

/// The `data` of `pusher:subscribe`.
#[derive(Debug, Deserialize)]
pub struct Subscribe {
    pub channel: String,
    #[serde(default)]
    pub auth: Option<String>,
    /// A JSON string, signed as received; never re-serialized.
    #[serde(default)]
    pub channel_data: Option<String>,
    /// Clarion's missed-message recovery request (`protocol::recovery::Request::parse`), kept
    /// raw: any JSON, so that a malformed one is a plain subscribe rather than an error, and
    /// small, because a subscribe lives in every connection task's state.
    #[serde(default)]
    pub clarion: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    data: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct ChannelOnly {
    channel: String,
}

#[derive(Deserialize)]
struct Signin {
    auth: String,
    user_data: String,
}

/// Why a frame could not be understood; the text is sent back to the client.
#[derive(Debug, PartialEq, Eq)]
pub struct InboundError(pub String);

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Inbound, InboundError> {
    if !is_object_text(text) {
        return Err(InboundError(
            "Invalid message format: expected a JSON object".into(),
        ));
    }
    let env: Envelope = serde_json::from_str(text)
        .map_err(|e| InboundError(format!("Invalid message format: {e}")))?;
    if let Some(name) = env.event.strip_prefix("pusher:") {
        return match name {
            "ping" => Ok(Inbound::Ping),
            "pong" => Ok(Inbound::Pong),
            "subscribe" => Ok(Inbound::Subscribe(pusher_data(&env, "pusher:subscribe")?)),
            "unsubscribe" => {
                let d: ChannelOnly = pusher_data(&env, "pusher:unsubscribe")?;
                Ok(Inbound::Unsubscribe { channel: d.channel })
            }
            "signin" => {
                let d: Signin = pusher_data(&env, "pusher:signin")?;
                Ok(Inbound::Signin {
                    auth: d.auth,
                    user_data: d.user_data,
                })
            }
            _ => Err(InboundError(format!(
                "Invalid message format: unknown event {:?}",
                env.event
            ))),
        };
    }
    if env.event.starts_with("pusher_internal:") {
        return Err(InboundError(format!(
            "Invalid message format: clients may not send {:?}",
            env.event
        )));
    }
    Ok(Inbound::ClientEvent {
        event: env.event,
        channel: env.channel,
        data: env.data,
    })
}

/// Decodes the `data` of a `pusher:` event. pusher-js sends an object; a string holding JSON is
/// accepted too (some clients double-encode).
fn pusher_data<T: for<'de> Deserialize<'de>>(
    env: &Envelope,
    event: &str,
) -> Result<T, InboundError> {
    let bad =
        |e: serde_json::Error| InboundError(format!("Invalid message format: {event} data: {e}"));
    let raw = env
        .data
        .as_ref()
        .ok_or_else(|| InboundError(format!("Invalid message format: {event} needs data")))?;
    let not_object = || {
        InboundError(format!(
            "Invalid message format: {event} data: expected a JSON object"
        ))
    };
    if raw.get().trim_start().starts_with('"') {
        let inner: String = serde_json::from_str(raw.get()).map_err(bad)?;
        if !is_object_text(&inner) {
            return Err(not_object());
        }
        serde_json::from_str(&inner).map_err(bad)
    } else if is_object_text(raw.get()) {
        serde_json::from_str(raw.get()).map_err(bad)
    } else {
        Err(not_object())
    }
}

/// Whether JSON text is an object. serde's derived structs also accept an array, taking the
/// fields by position, so without this `["client-x","private-a",{}]` would pass for a client
/// event; the protocol's messages are objects, and so is every `pusher:` event's data (the HTTP
/// API's events too). Checked on the text (JSON whitespace, then `{`) so the hot path parses
/// only once.
pub fn is_object_text(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subscribe_object_and_string() {
        let m = parse(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"a"}}"#);
        assert!(
            matches!(m, Ok(Inbound::Subscribe(Subscribe { ref channel, .. })) if channel == "a")
        );
        let m = parse(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"b\",\"auth\":null}"}"#);
        assert!(
            matches!(m, Ok(Inbound::Subscribe(Subscribe { ref channel, auth: None, .. })) if channel == "b")
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse("not json").is_err());
        assert!(parse("[]").is_err());
        assert!(parse(r#"{"event":5}"#).is_err());
        assert!(parse(r#"{"event":"pusher:subscribe"}"#).is_err());
        assert!(parse(r#"{"event":"pusher:subscribe","data":{"channel":7}}"#).is_err());
        assert!(parse(r#"{"event":"pusher:bogus","data":{}}"#).is_err());
        assert!(parse(r#"{"event":"pusher_internal:member_added","data":{}}"#).is_err());
    }

    /// Found by the `inbound_frame` fuzz target: `[\t…"puphe{"]` decoded as a client event,
    /// because derived structs take their fields from an array by position.
    #[test]
    fn arrays_are_not_messages() {
        let e = parse("[\t\t\t\t\t\t\t\t\t\"puphe{\"]").expect_err("array");
        assert_eq!(e.0, "Invalid message format: expected a JSON object");
        assert!(parse(r#"["client-x","private-a",{"a":1}]"#).is_err());
        assert!(parse(r#"{"event":"pusher:subscribe","data":["private-a","k:s"]}"#).is_err());
        assert!(parse(r#"{"event":"pusher:subscribe","data":"[\"private-a\"]"}"#).is_err());
        assert!(parse(r#"{"event":"pusher:unsubscribe","data":["a"]}"#).is_err());
        assert!(parse(r#"{"event":"pusher:signin","data":["k:s","{}"]}"#).is_err());
        // JSON whitespace before the object is fine, as before.
        assert!(matches!(
            parse(
                " \r\n\t{\"event\":\"pusher:subscribe\",\"data\":\" {\\\"channel\\\":\\\"a\\\"}\"}"
            ),
            Ok(Inbound::Subscribe(_))
        ));
    }

    #[test]
    fn client_event_keeps_raw_data() {
        match parse(r#"{"event":"client-x","channel":"private-a","data":{"a": 1}}"#) {
            Ok(Inbound::ClientEvent { data: Some(d), .. }) => assert_eq!(d.get(), r#"{"a": 1}"#),
            other => panic!("unexpected {other:?}"),
        }
    }
}
