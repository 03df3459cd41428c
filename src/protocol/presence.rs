//! Users as clients describe them: the presence member in a `pusher:subscribe`'s
//! `channel_data`, and the signed-in user in a `pusher:signin`'s `user_data`.
//!
//! This is pure so that the subscribe path and the fuzzer run the very same code; the session
//! only decides what to answer when it fails.

use serde_json::Value;

/// A presence member as read from `channel_data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The identity members are counted by: the string `user_id`, or a number's JSON text, so
    /// `"7"` and `7` are the same user (pusher-js and the server SDKs mix both).
    pub key: String,
    /// The `user_id` exactly as sent (a non-empty string or a number), echoed to the members.
    pub user_id: Value,
    /// The `user_info` as sent, or `null` when absent.
    pub user_info: Value,
}

/// Why `channel_data` gives no member; `Display` is the text sent in the subscription error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberError {
    /// Larger than the app's `max_presence_member_size`.
    TooBig { len: usize, max: usize },
    /// Not a JSON object with a usable `user_id`.
    NoUserId,
}

impl std::fmt::Display for MemberError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberError::TooBig { len, max } => write!(
                f,
                "Presence member data is {len} bytes; the limit is {max} bytes"
            ),
            MemberError::NoUserId => write!(
                f,
                "channel_data must be a JSON object with a user_id (a non-empty string or a number)"
            ),
        }
    }
}

/// Reads the member from `channel_data`. `max_size` is in bytes, 0 meaning unlimited; the size
/// is checked before parsing so an oversized document costs no parse.
pub fn parse_member(channel_data: &str, max_size: usize) -> Result<Member, MemberError> {
    if max_size != 0 && channel_data.len() > max_size {
        return Err(MemberError::TooBig {
            len: channel_data.len(),
            max: max_size,
        });
    }
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(channel_data) else {
        return Err(MemberError::NoUserId);
    };
    let user_id = object.remove("user_id");
    let key = match &user_id {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(MemberError::NoUserId),
    };
    Ok(Member {
        key,
        user_id: user_id.unwrap_or(Value::Null),
        user_info: object.remove("user_info").unwrap_or(Value::Null),
    })
}

/// A user as read from the `user_data` of `pusher:signin`.
#[derive(Debug, Clone, PartialEq)]
pub struct SigninUser {
    /// The non-empty string `id`; `#server-to-user-{id}` and `terminate_connections` use it.
    pub id: String,
    /// The `user_info` as sent, or `null` when absent.
    pub user_info: Value,
    /// The users it watches (used when the app has watchlist events on).
    pub watchlist: super::watchlist::Watchlist,
}

/// Reads the user from `user_data`; `None` unless it is a JSON object with a non-empty string
/// `id` (a number is refused: the user channel's name is built from the id as text).
pub fn parse_signin_user(user_data: &str) -> Option<SigninUser> {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(user_data) else {
        return None;
    };
    let id = match object.remove("id") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return None,
    };
    let watchlist = super::watchlist::parse(object.get("watchlist"));
    Some(SigninUser {
        id,
        user_info: object.remove("user_info").unwrap_or(Value::Null),
        watchlist,
    })
}

/// Whether a subscribe announces `member_added`: only for the user's first connection on the
/// channel. `added` says the subscribe added this connection (a repeated subscribe adds
/// nothing); `connections` is the user's connections on the channel afterwards, on this node
/// or over the cluster, whichever decides.
pub fn announces_member_added(added: bool, connections: u64) -> bool {
    added && connections == 1
}

/// Whether an unsubscribe announces `member_removed`: only when the user's last connection
/// left (`connections` is the count afterwards).
pub fn announces_member_removed(connections: u64) -> bool {
    connections == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn member_added_once_per_user_and_member_removed_after_the_last_connection() {
        // Two tabs of one user: the first announces, the second does not.
        assert!(announces_member_added(true, 1));
        assert!(!announces_member_added(true, 2));
        // A repeated subscribe of the same connection announces nothing.
        assert!(!announces_member_added(false, 1));
        // The first tab closes: one left, no announcement; the second closes: announced.
        assert!(!announces_member_removed(1));
        assert!(announces_member_removed(0));
    }

    #[test]
    fn a_fractional_id_reads_back_as_written() {
        // Found by the subscribe_auth fuzz target: without serde_json's float_roundtrip this id
        // changed its last bit between member_added and a member list read back from Redis.
        let m = parse_member(r#"{"user_id":184.467881474191032322}"#, 0).expect("ok");
        let text = m.user_id.to_string();
        let back: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(back, m.user_id, "{text}");
    }

    #[test]
    fn reads_string_and_number_ids() {
        let m = parse_member(r#"{"user_id":"u1","user_info":{"name":"A"}}"#, 1024).expect("ok");
        assert_eq!(m.key, "u1");
        assert_eq!(m.user_id, json!("u1"));
        assert_eq!(m.user_info, json!({"name": "A"}));
        let m = parse_member(r#"{"user_id":10}"#, 0).expect("ok");
        assert_eq!(m.key, "10");
        assert_eq!(m.user_id, json!(10));
        assert_eq!(m.user_info, Value::Null);
    }

    #[test]
    fn refuses_what_names_no_user() {
        for bad in [
            "",
            "not json",
            "[]",
            r#""{\"user_id\":1}""#,
            r#"{"user_id":""}"#,
            r#"{"user_id":null}"#,
            r#"{"user_id":true}"#,
            r#"{"user_id":[1]}"#,
            r#"{"user_info":{}}"#,
        ] {
            assert_eq!(parse_member(bad, 0), Err(MemberError::NoUserId), "{bad}");
        }
    }

    #[test]
    fn signin_needs_a_string_id() {
        let u = parse_signin_user(r#"{"id":"42","user_info":{"n":1}}"#).expect("ok");
        assert_eq!(u.id, "42");
        assert_eq!(u.user_info, json!({"n": 1}));
        assert_eq!(
            parse_signin_user(r#"{"id":"a"}"#).map(|u| u.user_info),
            Some(Value::Null)
        );
        for bad in ["", "{}", r#"{"id":42}"#, r#"{"id":""}"#, r#"["id"]"#] {
            assert_eq!(parse_signin_user(bad), None, "{bad}");
        }
    }

    #[test]
    fn size_is_checked_first() {
        let data = r#"{"user_id":"abc"}"#;
        assert!(parse_member(data, data.len()).is_ok());
        assert_eq!(
            parse_member(data, data.len() - 1),
            Err(MemberError::TooBig {
                len: data.len(),
                max: data.len() - 1
            })
        );
        assert_eq!(
            parse_member("x".repeat(2000).as_str(), 1024),
            Err(MemberError::TooBig {
                len: 2000,
                max: 1024
            })
        );
    }
}
