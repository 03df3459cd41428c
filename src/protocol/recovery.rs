//! Missed-message recovery on the wire (docs/recovery.md): the `clarion` member a client adds to
//! `pusher:subscribe`, the `clarion` stamp on frames, the `clarion:recovery` marker, and the
//! one decision whether a position can be recovered.
//!
//! Pure, like the rest of `protocol`: the stores hold history, this says what it means.

use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::frames::{self, Frame};
use super::socket_id::SocketId;

/// A place in a channel's history: the history's identity (`epoch`, new whenever history may
/// have been lost) and the offset of an event in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub offset: u64,
}

/// What an opted-in subscribe asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Recover everything after this position; `None`: a fresh start (learn the head).
    pub from: Option<Position>,
    /// The socket id the client had when it recorded the position: events published with it
    /// excluded (`toOthers()`) stay skipped in the replay.
    pub prev_socket_id: Option<SocketId>,
}

impl Request {
    /// Reads the `clarion` member of a subscribe. Anything malformed (another version, an epoch
    /// without an offset, wrong types) gives `None`: a plain subscribe, never an error.
    pub fn parse(raw: &RawValue) -> Option<Request> {
        let clarion: Value = serde_json::from_str(raw.get()).ok()?;
        let obj = clarion.as_object()?;
        if obj.get("v").and_then(Value::as_u64) != Some(1) {
            return None;
        }
        let from = match (obj.get("epoch"), obj.get("offset")) {
            (None, None) => None,
            (Some(Value::String(epoch)), Some(offset)) if !epoch.is_empty() => Some(Position {
                epoch: epoch.clone(),
                offset: offset.as_u64()?,
            }),
            _ => return None,
        };
        let prev_socket_id = match obj.get("prev_socket_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.parse().ok()?),
            Some(_) => return None,
        };
        Some(Request {
            from,
            prev_socket_id,
        })
    }
}

/// Why a position could not be recovered (the marker's `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The history the position belongs to is gone (restart, eviction, flush) or unknown.
    EpochChanged,
    /// More events were missed than the window holds or `max_replay` allows.
    TooFarBehind,
    /// The missed events aged out (`history_ttl`).
    Expired,
    /// History could not be read.
    Unavailable,
}

impl Failure {
    pub fn reason(self) -> &'static str {
        match self {
            Failure::EpochChanged => "epoch_changed",
            Failure::TooFarBehind => "too_far_behind",
            Failure::Expired => "expired",
            Failure::Unavailable => "unavailable",
        }
    }
}

/// What a channel's history holds right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub epoch: String,
    /// The offset of the last event published (0 before the first).
    pub head: u64,
    /// The offset of the oldest event still held; `None` when none is.
    pub oldest: Option<u64>,
    /// Whether events were dropped for their age (rather than for room).
    pub aged_out: bool,
}

/// Whether everything after `from` can be replayed: the same epoch, every later offset up to the
/// head still held, and no more of them than `max_replay`. All or nothing: a partial replay is
/// a failure.
pub fn decide(from: &Position, held: &Held, max_replay: usize) -> Result<(), Failure> {
    if from.epoch.is_empty() || from.epoch != held.epoch || from.offset > held.head {
        return Err(Failure::EpochChanged);
    }
    let missed = held.head - from.offset;
    if missed == 0 {
        return Ok(());
    }
    let first_needed = from.offset + 1;
    match held.oldest {
        Some(oldest) if oldest <= first_needed => {}
        _ if held.aged_out => return Err(Failure::Expired),
        _ => return Err(Failure::TooFarBehind),
    }
    if missed > max_replay as u64 {
        return Err(Failure::TooFarBehind);
    }
    Ok(())
}

/// A new epoch: 10 random base-36 characters.
pub fn new_epoch() -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..10)
        .map(|_| {
            let i = rand::random_range(0..DIGITS.len());
            char::from(DIGITS.get(i).copied().unwrap_or(b'0'))
        })
        .collect()
}

/// The frame with `"clarion":{"epoch":…,"offset":…}` added at the top level. Frames are JSON
/// objects built by `frames`, so the stamp goes before the final `}`; the rest stays byte for
/// byte (pusher-js ignores unknown top-level fields).
pub fn stamp(frame: &Frame, at: &Position) -> Frame {
    let text = frame.as_str();
    let Some(body) = text.strip_suffix('}') else {
        return frame.clone();
    };
    let stamp = json!({"epoch": at.epoch, "offset": at.offset}).to_string();
    // Built at its exact length: a recorded frame lives in history for minutes, and `format!`
    // would leave it with up to twice the capacity it needs.
    const KEY: &str = ",\"clarion\":";
    let mut out = String::with_capacity(body.len() + KEY.len() + stamp.len() + 1);
    out.push_str(body);
    out.push_str(KEY);
    out.push_str(&stamp);
    out.push('}');
    Frame::from(out)
}

/// The `clarion:recovery` marker that ends a replay, stamped with the head; unstamped only when
/// history could not be read, so no head is known (`unavailable`).
pub fn marker(channel: &str, outcome: Result<usize, Failure>, head: Option<&Position>) -> Frame {
    let data = match outcome {
        Ok(replayed) => json!({"recovered": true, "replayed": replayed}),
        Err(f) => json!({"recovered": false, "reason": f.reason()}),
    };
    let encoded = Value::String(data.to_string()).to_string();
    let plain = frames::envelope("clarion:recovery", Some(channel), Some(&encoded), None);
    match head {
        Some(at) => stamp(&plain, at),
        None => plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: epoch.into(),
            offset,
        }
    }

    fn held(head: u64, oldest: Option<u64>, aged_out: bool) -> Held {
        Held {
            epoch: "e1".into(),
            head,
            oldest,
            aged_out,
        }
    }

    fn parse(v: &Value) -> Option<Request> {
        let raw = serde_json::value::to_raw_value(v).expect("raw");
        Request::parse(&raw)
    }

    #[test]
    fn requests_parse_and_anything_malformed_is_a_plain_subscribe() {
        assert_eq!(
            parse(&json!({"v": 1})),
            Some(Request {
                from: None,
                prev_socket_id: None
            })
        );
        let r = parse(&json!({"v": 1, "epoch": "e1", "offset": 7, "prev_socket_id": "1.2"}))
            .expect("valid");
        assert_eq!(r.from, Some(at("e1", 7)));
        assert_eq!(r.prev_socket_id, Some(SocketId(1, 2)));
        for bad in [
            json!({"v": 2}),
            json!({"epoch": "e1", "offset": 1}),
            json!({"v": 1, "epoch": "e1"}),
            json!({"v": 1, "offset": 3}),
            json!({"v": 1, "epoch": "", "offset": 3}),
            json!({"v": 1, "epoch": "e1", "offset": -1}),
            json!({"v": 1, "prev_socket_id": "nope"}),
            json!("v1"),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn recovery_is_all_or_nothing() {
        // Everything after 5 up to 9 is held: recovered.
        assert_eq!(decide(&at("e1", 5), &held(9, Some(3), false), 100), Ok(()));
        // Nothing missed.
        assert_eq!(decide(&at("e1", 9), &held(9, None, false), 100), Ok(()));
        // Another history, or a position it never reached.
        assert_eq!(
            decide(&at("e0", 5), &held(9, Some(1), false), 100),
            Err(Failure::EpochChanged)
        );
        assert_eq!(
            decide(&at("e1", 10), &held(9, Some(1), false), 100),
            Err(Failure::EpochChanged)
        );
        // Offset 6 is no longer held: dropped for room, or for age.
        assert_eq!(
            decide(&at("e1", 5), &held(9, Some(7), false), 100),
            Err(Failure::TooFarBehind)
        );
        assert_eq!(
            decide(&at("e1", 5), &held(9, None, true), 100),
            Err(Failure::Expired)
        );
        // Held, but more than max_replay.
        assert_eq!(
            decide(&at("e1", 5), &held(9, Some(1), false), 3),
            Err(Failure::TooFarBehind)
        );
        assert_eq!(decide(&at("e1", 5), &held(9, Some(1), false), 4), Ok(()));
    }

    #[test]
    fn stamps_go_on_top_and_leave_the_rest_byte_for_byte() {
        let f = frames::envelope(
            "booked",
            Some("private-p.1"),
            Some("\"{\\\"id\\\":7}\""),
            None,
        );
        let s = stamp(&f, &at("k3j9", 42));
        assert_eq!(
            s.as_str(),
            r#"{"event":"booked","channel":"private-p.1","data":"{\"id\":7}","clarion":{"epoch":"k3j9","offset":42}}"#
        );
        let m = marker(
            "private-p.1",
            Err(Failure::TooFarBehind),
            Some(&at("k3j9", 42)),
        );
        let v: Value = serde_json::from_str(m.as_str()).expect("json");
        assert_eq!(v["event"], "clarion:recovery");
        assert_eq!(
            v["data"],
            r#"{"reason":"too_far_behind","recovered":false}"#
        );
        assert_eq!(v["clarion"], json!({"epoch": "k3j9", "offset": 42}));
        let ok = marker("c", Ok(6), Some(&at("e", 1)));
        let v: Value = serde_json::from_str(ok.as_str()).expect("json");
        assert_eq!(v["data"], r#"{"recovered":true,"replayed":6}"#);
        let gone = marker("c", Err(Failure::Unavailable), None);
        let v: Value = serde_json::from_str(gone.as_str()).expect("json");
        assert!(v.get("clarion").is_none(), "no head known: no stamp");
        let ok = marker("c", Ok(6), Some(&at("e", 1)));
        let v: Value = serde_json::from_str(ok.as_str()).expect("json");
        assert_eq!(v["data"], r#"{"recovered":true,"replayed":6}"#);
    }

    #[test]
    fn epochs_are_ten_base36_characters_and_differ() {
        let a = new_epoch();
        assert_eq!(a.len(), 10);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_ne!(a, new_epoch());
    }
}
