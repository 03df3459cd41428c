//! Watchlist events (docs/protocol.md §10.1): the `watchlist` a signed-in user brings in its
//! signed `user_data`, and the `pusher_internal:watchlist_events` frame that tells it who of
//! those users is online.
//!
//! Pure, so the sign-in path and its tests read ids the very same way.

use serde_json::{json, Value};

use super::frames::{self, Frame};

/// The most ids one connection may watch; the rest are dropped with a non-fatal 4302.
pub const MAX_IDS: usize = 100;

/// The text of the non-fatal `pusher:error` 4302 sent when a watchlist is longer.
pub const OVER_LIMIT: &str = "Watchlist limit exceeded. Only the first 100 user IDs are accepted.";

/// A connection's watchlist as kept: distinct ids, in the order given, at most `MAX_IDS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watchlist {
    pub ids: Vec<String>,
    /// More than `MAX_IDS` distinct ids were given.
    pub truncated: bool,
}

/// Reads the `watchlist` member of the parsed `user_data`. Laravel passes the array through
/// untouched, so ids are often JSON numbers: an integer becomes its decimal text; other types
/// and empty strings are ignored; a repeated id keeps its first place.
pub fn parse(watchlist: Option<&Value>) -> Watchlist {
    let Some(Value::Array(items)) = watchlist else {
        return Watchlist::default();
    };
    let mut out = Watchlist::default();
    for item in items {
        let id = match item {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => continue,
        };
        if out.ids.contains(&id) {
            continue;
        }
        if out.ids.len() == MAX_IDS {
            out.truncated = true;
            break;
        }
        out.ids.push(id);
    }
    out
}

/// `pusher_internal:watchlist_events` with an `online` then an `offline` entry, each left out
/// when empty; `None` when both are (no frame is sent then).
pub fn events(online: &[String], offline: &[String]) -> Option<Frame> {
    let events: Vec<Value> = [("online", online), ("offline", offline)]
        .into_iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(name, ids)| json!({"name": name, "user_ids": ids}))
        .collect();
    if events.is_empty() {
        return None;
    }
    Some(frames::watchlist_events(&json!({ "events": events })))
}

/// The frame for one user's transition.
pub fn transition(user: &str, online: bool) -> Frame {
    let one = [user.to_string()];
    let (on, off): (&[String], &[String]) = if online { (&one, &[]) } else { (&[], &one) };
    events(on, off).unwrap_or_else(|| frames::watchlist_events(&json!({ "events": [] })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: Value) -> Watchlist {
        parse(Some(&v))
    }

    #[test]
    fn numbers_become_strings_and_the_rest_is_ignored() {
        let w = ids(json!(["2", 3, "", null, 4.5, {"id": 5}, "2", true, 18446744073709551615u64]));
        assert_eq!(w.ids, ["2", "3", "18446744073709551615"]);
        assert!(!w.truncated);
        assert_eq!(parse(None), Watchlist::default());
        assert_eq!(ids(json!("2")), Watchlist::default(), "not an array");
    }

    #[test]
    fn at_most_a_hundred_distinct_ids_are_kept() {
        let exactly: Vec<Value> = (0..100).map(|i| json!(i)).chain([json!(0)]).collect();
        let w = ids(Value::Array(exactly));
        assert_eq!(
            (w.ids.len(), w.truncated),
            (100, false),
            "a duplicate is not one more"
        );
        let over: Vec<Value> = (0..150).map(|i| json!(format!("u{i}"))).collect();
        let w = ids(Value::Array(over));
        assert_eq!((w.ids.len(), w.truncated), (100, true));
        assert_eq!(w.ids.last().map(String::as_str), Some("u99"));
    }

    #[test]
    fn the_frame_has_no_channel_and_string_data() {
        let f = events(&["2".into()], &["3".into(), "4".into()]).expect("a frame");
        let v: Value = serde_json::from_str(f.as_str()).expect("JSON");
        assert_eq!(v["event"], "pusher_internal:watchlist_events");
        assert!(v.get("channel").is_none());
        let data: Value = serde_json::from_str(v["data"].as_str().expect("string")).expect("JSON");
        assert_eq!(
            data,
            json!({"events": [
                {"name": "online", "user_ids": ["2"]},
                {"name": "offline", "user_ids": ["3", "4"]}
            ]})
        );
        assert!(events(&[], &[]).is_none());
        let t: Value = serde_json::from_str(transition("9", false).as_str()).expect("JSON");
        assert_eq!(
            t["data"],
            r#"{"events":[{"name":"offline","user_ids":["9"]}]}"#
        );
    }
}
