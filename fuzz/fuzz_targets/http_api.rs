//! Fuzzes the HTTP API's request checks as `src/http/mod.rs` runs them: query parsing and
//! percent-decoding (`http::auth::parse_query`, `decode`, `param`), the signature check
//! (`http::auth::verify`, `protocol::signature::http_string_to_sign`), the `info` of channel
//! queries (`http::info::Info::parse`) and the `POST /events` / `POST /batch_events` body
//! parsing and validation (`http::events::parse_trigger_body` / `parse_batch_body`, which the
//! real handlers call).
//!
//! Input: a request line `METHOD PATH[?QUERY]`, a newline, then the body bytes.
//!
//! Beyond "does not panic" it asserts:
//! - `parse_query` keeps one pair per non-empty `&` segment, in order, and decoding never makes
//!   a component longer (no blow-up from `%` escapes);
//! - the string to sign does not depend on the order of distinct parameters, lowercases keys
//!   and never includes `auth_signature`;
//! - `verify` accepts only when key, timestamp window, version, body MD5 and the HMAC of the
//!   string to sign all hold, and always accepts what `signature::signed_query` produced for
//!   the same method, path, body and extra parameters (client and server agree); the server's
//!   clock is varied too (0 and the i64 extremes), where it must still never accept a
//!   timestamp outside the window;
//! - only JSON objects are accepted as an event or a batch (and as each batch item);
//! - an accepted event has a non-empty name, 1..=limit valid channels, data within the payload
//!   limit, and the frame built for subscribers is valid JSON whose `data` is a string; a batch
//!   respects the batch limit and gives one channel per event.

#![no_main]

use clarion::app::App;
use clarion::http::auth::{verify, TIMESTAMP_WINDOW};
use clarion::protocol::query::{decode, param, parse_query};
use clarion::http::info::Info;
use clarion::http::events::{parse_batch_body, parse_trigger_body, Trigger};
use clarion::protocol::channel_name;
use clarion::protocol::frames;
use clarion::protocol::signature;
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;

/// The server's clock; seeds are signed for it.
const NOW: i64 = 1_353_088_179;

/// Other clocks `verify` must cope with: 0 is what the server uses when the system clock is
/// before 1970, and the extremes make any far-off `auth_timestamp` an arithmetic edge case.
const OTHER_CLOCKS: [i64; 3] = [0, i64::MIN, i64::MAX];

fn apps() -> [App; 2] {
    let base = App {
        id: "3".into(),
        key: "278d425bdf160c739803".into(),
        secret: "7ad3773142a6692b25b8".into(),
        ..App::default()
    };
    // Every limit off, so the fuzzer also reaches what only unlimited apps accept.
    let unlimited = App {
        max_event_payload_size: 0,
        max_event_channels: 0,
        max_event_batch_size: 0,
        max_channel_name_length: usize::MAX,
        max_event_name_length: usize::MAX,
        ..base.clone()
    };
    [base, unlimited]
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let line = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or(&[]);
    let (method, target) = line.split_once(' ').unwrap_or(("POST", &line));
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));

    let query = check_query(raw_query);
    let path = decode(raw_path);
    check_string_to_sign(method, &path, &query);
    for app in apps() {
        check_verify(&app, method, &path, &query, body);
        for allow_cache in [false, true] {
            let list = param(&query, "info").unwrap_or("");
            if let Ok(w) = Info::parse(list, allow_cache) {
                assert!(allow_cache || !w.cache);
            }
        }
        if let Ok(t) = parse_trigger_body(&app, body) {
            assert!(
                json_object(body).is_some(),
                "a body that is no object was accepted"
            );
            check_trigger(&app, &t, false);
        }
        if let Ok(batch) = parse_batch_body(&app, body) {
            let items = json_object(body)
                .and_then(|o| {
                    o.get("batch")
                        .map(|b| serde_json::from_str::<Vec<Object>>(b.get()))
                })
                .expect("a batch body that is no object, or without batch, was accepted");
            assert!(items.is_ok(), "a batch item that is no object was accepted");
            assert!(app.max_event_batch_size == 0 || batch.len() <= app.max_event_batch_size);
            for t in &batch {
                check_trigger(&app, t, true);
            }
        }
    }
});

type Object = BTreeMap<String, IgnoredAny>;

/// The members of a JSON object, checking syntax and UTF-8 but not number ranges (`1e400` is
/// valid JSON; the server forwards data it does not interpret).
fn json_object(body: &[u8]) -> Option<BTreeMap<String, Box<RawValue>>> {
    serde_json::from_str(std::str::from_utf8(body).ok()?).ok()
}

fn check_query(raw: &str) -> Vec<(String, String)> {
    let q = parse_query(raw);
    let segments: Vec<&str> = raw.split('&').filter(|s| !s.is_empty()).collect();
    assert_eq!(q.len(), segments.len());
    for ((k, v), seg) in q.iter().zip(&segments) {
        let (rk, rv) = seg.split_once('=').unwrap_or((seg, ""));
        assert!(
            k.len() <= rk.len() && v.len() <= rv.len(),
            "{seg:?} → {k:?}={v:?}"
        );
        if !rk.contains('%') {
            // Without escapes only `+` changes: a query is form-encoded, `+` is a space.
            assert_eq!(k, &rk.replace('+', " "));
        }
    }
    if let Some((k, v)) = q.first() {
        assert_eq!(param(&q, &k.to_ascii_uppercase()), Some(v.as_str()));
    }
    q
}

fn check_string_to_sign(method: &str, path: &str, query: &[(String, String)]) {
    let s = signature::http_string_to_sign(method, path, query);
    let head = format!("{}\n{}\n", method.to_ascii_uppercase(), path);
    assert!(s.starts_with(&head), "{s:?}");
    let mut keys: Vec<String> = query
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| k != "auth_signature")
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    if keys.len() == n {
        let reversed: Vec<(String, String)> = query.iter().rev().cloned().collect();
        assert_eq!(
            s,
            signature::http_string_to_sign(method, path, &reversed),
            "order matters for {query:?}"
        );
    }
}

fn check_verify(app: &App, method: &str, path: &str, query: &[(String, String)], body: &[u8]) {
    for now in OTHER_CLOCKS {
        if verify(app, method, path, query, body, now).is_ok() {
            let ts = param(query, "auth_timestamp").and_then(|t| t.parse::<i64>().ok());
            assert!(ts.is_some_and(|ts| now.abs_diff(ts) <= TIMESTAMP_WINDOW.unsigned_abs()));
        }
    }
    let result = verify(app, method, path, query, body, NOW);
    if let Err(e) = &result {
        // The message goes into a JSON body.
        assert!(!e.to_string().is_empty());
    } else {
        assert_eq!(param(query, "auth_key"), Some(app.key.as_str()));
        let ts: i64 = param(query, "auth_timestamp")
            .and_then(|t| t.parse().ok())
            .expect("accepted without a timestamp");
        assert!(NOW.abs_diff(ts) <= TIMESTAMP_WINDOW.unsigned_abs());
        assert_eq!(param(query, "auth_version"), Some("1.0"));
        match param(query, "body_md5") {
            Some(m) => assert!(m.eq_ignore_ascii_case(&signature::body_md5(body))),
            None => assert!(body.is_empty()),
        }
        let want = signature::sign(
            &app.secret,
            &signature::http_string_to_sign(method, path, query),
        );
        let sig = param(query, "auth_signature").expect("accepted without a signature");
        assert!(sig.eq_ignore_ascii_case(&want), "{sig:?} accepted");
    }

    // What a client signs for the same request must be accepted. Parameters a client never
    // passes as extras (the auth_* ones and body_md5, which signed_query adds) are left out.
    let extra: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !k.starts_with("auth_") && k != "body_md5"
        })
        .cloned()
        .collect();
    let signed = signature::signed_query(
        &app.key,
        &app.secret,
        method,
        path,
        body,
        &extra,
        NOW as u64,
    );
    let q = parse_query(&signed);
    if let Err(e) = verify(app, method, path, &q, body, NOW) {
        panic!("signed_query({extra:?}) = {signed:?} refused: {e}");
    }
}

fn check_trigger(app: &App, t: &Trigger, batch: bool) {
    assert!(!t.name.is_empty());
    assert!(t.name.chars().count() <= app.max_event_name_length);
    assert!(!t.channels.is_empty());
    assert!(!batch || t.channels.len() == 1);
    assert!(app.max_event_channels == 0 || t.channels.len() <= app.max_event_channels);
    let decoded: String = match serde_json::from_str(&t.data) {
        Ok(s) => s,
        Err(e) => panic!("data {:?} is not a JSON string: {e}", t.data),
    };
    // The limit counts the decoded string, or the JSON text of non-string data.
    assert!(app.max_event_payload_size == 0 || decoded.len() <= app.max_event_payload_size);
    for ch in &t.channels {
        assert!(channel_name::validate(ch, app.max_channel_name_length).is_ok());
        let frame = frames::envelope(&t.name, Some(ch), Some(&t.data), None);
        let v: Value = match serde_json::from_str(frame.as_str()) {
            Ok(v) => v,
            Err(e) => panic!("frame {frame:?} is not JSON: {e}"),
        };
        assert_eq!(v["event"], Value::String(t.name.clone()));
        assert_eq!(v["channel"], Value::String(ch.clone()));
        assert!(v["data"].is_string());
    }
}
