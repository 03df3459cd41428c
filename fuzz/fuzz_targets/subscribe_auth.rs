//! Fuzzes the subscribe and sign-in path the way `src/ws/subscribe.rs` and `src/ws/signin.rs`
//! run it: socket id parsing (`protocol::socket_id`), channel-name validation and
//! classification (`protocol::channel_name`), the `auth` check
//! (`protocol::signature::verify_channel_auth` / `verify_user_auth`) and the presence member /
//! signed-in user parsing (`protocol::presence`).
//!
//! Input: the first line is the socket id; the rest is either a `pusher:subscribe` or
//! `pusher:signin` frame (decoded with `protocol::inbound::parse`, so seeds are real frames), or
//! else raw fields, one per line: channel, auth, channel_data (absent when the line is missing).
//!
//! Beyond "does not panic" it asserts:
//! - a socket id parses exactly when it is `^[0-9]+\.[0-9]+$` with both parts fitting in a u64,
//!   and then prints back without leading zeros and parses to the same id;
//! - channel-name validation agrees with an independent statement of the rule, is monotonic in
//!   the length limit, and the kind a prefix gives is consistent (presence and encrypted
//!   channels are private, `#server-to-user-` channels are neither);
//! - `verify_*_auth` accepts exactly `"<key>:<hex of the right HMAC>"` (either hex case) and
//!   nothing else, and accepts the signature computed with `signature::sign`;
//! - a presence member is refused exactly when over the size limit or without a usable
//!   `user_id`; an accepted one has a non-empty key equal to the string id or the number's
//!   text, and the `member_added` and `presence_succeeded` frames built from it are valid JSON
//!   that carry the same `user_id`;
//! - a signed-in user has a non-empty string id that names a valid `#server-to-user-` channel
//!   whenever the id is made of channel-name characters.

#![no_main]

use clarion::protocol::channel_name::{self, ChannelKind, NameError, SERVER_TO_USER_PREFIX};
use clarion::protocol::frames;
use clarion::protocol::inbound::{parse, Inbound};
use clarion::protocol::presence::{self, MemberError};
use clarion::protocol::signature;
use clarion::protocol::socket_id::SocketId;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const KEY: &str = "app-key";
const SECRET: &str = "app-secret";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (socket_id, rest) = text.split_once('\n').unwrap_or((&text, ""));
    check_socket_id(socket_id);
    match parse(rest) {
        Ok(Inbound::Subscribe(s)) => {
            check_subscribe(
                socket_id,
                &s.channel,
                s.auth.as_deref(),
                s.channel_data.as_deref(),
            );
        }
        Ok(Inbound::Signin { auth, user_data }) => check_signin(socket_id, &auth, &user_data),
        _ => {
            let mut lines = rest.splitn(3, '\n');
            let channel = lines.next().unwrap_or("");
            let auth = lines.next();
            let channel_data = lines.next();
            check_subscribe(socket_id, channel, auth, channel_data);
            if let Some(auth) = auth {
                check_signin(socket_id, auth, channel_data.unwrap_or(channel));
            }
        }
    }
});

fn check_socket_id(s: &str) {
    let parsed = s.parse::<SocketId>();
    let well_formed = s.split_once('.').and_then(|(a, b)| {
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return None;
        }
        Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?))
    });
    match (parsed, well_formed) {
        (Ok(id), Some((a, b))) => {
            assert_eq!(id, SocketId(a, b));
            let printed = id.to_string();
            assert_eq!(printed.parse::<SocketId>(), Ok(id));
            let canonical = |p: &str| {
                let t = p.trim_start_matches('0');
                if t.is_empty() { "0" } else { t }.to_string()
            };
            let (x, y) = s.split_once('.').unwrap_or_default();
            assert_eq!(printed, format!("{}.{}", canonical(x), canonical(y)));
        }
        (Err(()), None) => {}
        (p, w) => panic!("socket id {s:?}: parsed {p:?}, expected {w:?}"),
    }
}

/// The channel-name rule, stated independently of `channel_name::validate`.
fn expected_name_ok(name: &str, max: usize) -> bool {
    let body = name.strip_prefix(SERVER_TO_USER_PREFIX).unwrap_or(name);
    !name.is_empty()
        && !body.is_empty()
        && name.chars().count() <= max
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b))
}

fn check_channel(name: &str) {
    let mut ok_before = false;
    for max in [1, 7, 16, 200, usize::MAX] {
        let r = channel_name::validate(name, max);
        assert_eq!(
            r.is_ok(),
            expected_name_ok(name, max),
            "{name:?} max {max}: {r:?}"
        );
        assert!(
            !ok_before || r.is_ok(),
            "{name:?} valid at a lower limit but not at {max}"
        );
        ok_before = r.is_ok();
        if let Err(e) = &r {
            // The message goes to clients inside JSON.
            let _ = e.to_string();
            if let NameError::BadCharacter(c) = e {
                assert!(name.contains(*c));
            }
        }
    }
    let k = ChannelKind::of(name);
    assert!(!k.presence || k.private);
    assert!(!k.encrypted || k.private);
    assert!(!k.server_to_user || !(k.private || k.presence || k.encrypted || k.cache));
    assert_eq!(k.server_to_user, name.starts_with(SERVER_TO_USER_PREFIX));
    assert_eq!(
        k.private,
        name.starts_with("private-") || name.starts_with("presence-")
    );
    assert_eq!(k.presence, name.starts_with("presence-"));
    assert_eq!(k.encrypted, name.starts_with("private-encrypted-"));
}

/// `"<key>:<hex>"` is right exactly when the hex decodes to the expected MAC.
fn expected_auth_ok(auth: &str, message: &str) -> bool {
    let Some((k, sig)) = auth.split_once(':') else {
        return false;
    };
    let want = signature::sign(SECRET, message);
    k == KEY && hex::decode(sig).is_ok_and(|b| hex::encode(b) == want)
}

fn check_subscribe(socket_id: &str, channel: &str, auth: Option<&str>, data: Option<&str>) {
    check_channel(channel);
    let signed = match data {
        Some(d) => format!("{socket_id}:{channel}:{d}"),
        None => format!("{socket_id}:{channel}"),
    };
    let verify = |a: &str| signature::verify_channel_auth(KEY, SECRET, socket_id, channel, data, a);
    let auth = auth.unwrap_or("");
    assert_eq!(
        verify(auth),
        expected_auth_ok(auth, &signed),
        "auth {auth:?}"
    );
    let good = signature::sign(SECRET, &signed);
    assert!(verify(&format!("{KEY}:{good}")));
    assert!(verify(&format!("{KEY}:{}", good.to_ascii_uppercase())));
    assert!(!verify(&format!("{KEY}x:{good}")));
    assert!(!verify(&format!("{KEY}:{}", &good[1..])));

    // The subscription error that names the channel must be valid JSON.
    let frame = frames::subscription_error(channel, "AuthError", &signed, 4009);
    serde_json::from_str::<Value>(frame.as_str()).expect("subscription_error is JSON");

    if let Some(d) = data {
        check_member(channel, d);
    }
}

fn check_member(channel: &str, data: &str) {
    for max in [0, 16, 1024] {
        let r = presence::parse_member(data, max);
        let too_big = max != 0 && data.len() > max;
        assert_eq!(
            matches!(r, Err(MemberError::TooBig { .. })),
            too_big,
            "{data:?} max {max}: {r:?}"
        );
        let Ok(m) = r else {
            continue;
        };
        assert!(!m.key.is_empty());
        match &m.user_id {
            Value::String(s) => assert_eq!(&m.key, s),
            Value::Number(n) => assert_eq!(m.key, n.to_string()),
            other => panic!("user_id {other:?} accepted"),
        }
        let added = frames::member_added(channel, &m.user_id, &m.user_info);
        let inner = frame_data(added.as_str());
        assert_same_id(&inner["user_id"], &m.user_id);
        let mut hash = serde_json::Map::new();
        hash.insert(m.key.clone(), m.user_info.clone());
        let ok = frames::presence_succeeded(channel, vec![m.user_id.clone()], hash);
        let inner = frame_data(ok.as_str());
        assert_same_id(&inner["presence"]["ids"][0], &m.user_id);
        assert_eq!(inner["presence"]["count"], 1);
    }
}

fn check_signin(socket_id: &str, auth: &str, user_data: &str) {
    let signed = format!("{socket_id}::user::{user_data}");
    let verify = |a: &str| signature::verify_user_auth(KEY, SECRET, socket_id, user_data, a);
    assert_eq!(
        verify(auth),
        expected_auth_ok(auth, &signed),
        "auth {auth:?}"
    );
    let good = signature::sign(SECRET, &signed);
    assert!(verify(&format!("{KEY}:{good}")));
    if let Some(u) = presence::parse_signin_user(user_data) {
        assert!(!u.id.is_empty());
        let channel = format!("{SERVER_TO_USER_PREFIX}{}", u.id);
        let plain =
            u.id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-=@,.;".contains(&b));
        if plain {
            assert!(channel_name::validate(&channel, usize::MAX).is_ok());
        }
        assert!(ChannelKind::of(&channel).server_to_user);
        let frame = frames::signin_success(user_data);
        let inner = frame_data(frame.as_str());
        assert_eq!(inner["user_data"], Value::String(user_data.to_string()));
    }
}

/// A user id read back from a frame is the one sent, exactly: strings, integers and fractions
/// alike (fractions need serde_json's `float_roundtrip`, enabled in the main Cargo.toml after
/// this target found `184.467881474191032322` changing its last bit).
fn assert_same_id(back: &Value, sent: &Value) {
    assert_eq!(back, sent);
}

/// The `data` of a `pusher_internal:` frame: a JSON string holding a JSON object.
fn frame_data(frame: &str) -> Value {
    let outer: Value = serde_json::from_str(frame).expect("frame is JSON");
    let data = outer["data"].as_str().expect("data is a string");
    serde_json::from_str(data).expect("data holds JSON")
}
