//! HTTP API request signing (auth_version 1.0), checked exactly as protocol.md §5.3 and §0 say.

use crate::app::App;
use crate::protocol::query::param;
use crate::protocol::signature;

/// How far `auth_timestamp` may be from the server's clock, in seconds.
pub const TIMESTAMP_WINDOW: i64 = 600;

/// Verifies a signed request; the error text says exactly what is wrong.
pub fn verify(
    app: &App,
    method: &str,
    path: &str,
    query: &[(String, String)],
    body: &[u8],
    now_unix: i64,
) -> Result<(), String> {
    let key = param(query, "auth_key").ok_or("Missing auth_key query parameter")?;
    if key != app.key {
        return Err(format!(
            "auth_key {key:?} does not belong to app {:?}",
            app.id
        ));
    }
    let ts = param(query, "auth_timestamp").ok_or("Missing auth_timestamp query parameter")?;
    let ts: i64 = ts
        .parse()
        .map_err(|_| format!("auth_timestamp {ts:?} is not a Unix time in seconds"))?;
    // abs_diff, not `(now - ts).abs()`: the timestamp is the caller's, and a far-off one
    // (-9223372036854775808) must be refused, not overflow.
    if now_unix.abs_diff(ts) > TIMESTAMP_WINDOW.unsigned_abs() {
        return Err(format!(
            "Timestamp expired: Given timestamp ({ts}) not within {TIMESTAMP_WINDOW}s of server time ({now_unix})"
        ));
    }
    match param(query, "auth_version") {
        Some("1.0") => {}
        Some(v) => return Err(format!("auth_version {v:?} is not supported; use 1.0")),
        None => return Err("Missing auth_version query parameter (1.0)".into()),
    }
    match param(query, "body_md5") {
        Some(given) => {
            let actual = signature::body_md5(body);
            if !given.eq_ignore_ascii_case(&actual) {
                return Err(format!(
                    "body_md5 mismatch: the body's MD5 is {actual} but body_md5 is {given}"
                ));
            }
        }
        None if !body.is_empty() => {
            return Err(
                "Missing body_md5 query parameter (required when the request has a body)".into(),
            )
        }
        None => {}
    }
    let sig = param(query, "auth_signature").ok_or("Missing auth_signature query parameter")?;
    let to_sign = signature::http_string_to_sign(method, path, query);
    if !signature::verify_hex(&app.secret, &[to_sign.as_bytes()], sig) {
        return Err(format!(
            "Invalid signature: you should have sent HmacSHA256Hex({to_sign:?}, your_secret_key), but you sent {sig:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::query::parse_query;

    fn app() -> App {
        App {
            id: "3".into(),
            key: "278d425bdf160c739803".into(),
            secret: "7ad3773142a6692b25b8".into(),
            ..App::default()
        }
    }

    #[test]
    fn accepts_the_documented_request() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let q = parse_query("auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c");
        assert_eq!(
            verify(&app(), "POST", "/apps/3/events", &q, body, 1353088179),
            Ok(())
        );
        let e =
            verify(&app(), "POST", "/apps/3/events", &q, body, 1353088179 + 601).expect_err("old");
        assert!(e.starts_with("Timestamp expired"), "{e}");
        let e = verify(&app(), "POST", "/apps/3/events", &q, b"{}", 1353088179).expect_err("md5");
        assert!(e.contains("body_md5"), "{e}");
        let e = verify(&app(), "POST", "/apps/3/event", &q, body, 1353088179).expect_err("path");
        assert!(e.contains("POST\\n/apps/3/event\\n"), "{e}");
    }

    /// Found by the `http_api` fuzz target: `auth_timestamp=1` with the clock at `i64::MIN`
    /// overflowed `now - ts` (a panic in debug builds); with a real clock,
    /// `auth_timestamp=-9223372036854775808` did the same.
    #[test]
    fn far_timestamps_are_refused_without_overflow() {
        let query = |ts: &str| {
            parse_query(&format!(
                "auth_key=278d425bdf160c739803&auth_timestamp={ts}&auth_version=1.0&auth_signature=00"
            ))
        };
        for (ts, now) in [
            ("1", i64::MIN),
            ("-9223372036854775808", 1353088179),
            ("-9223372036854775808", i64::MAX),
            ("9223372036854775807", i64::MIN),
            ("9223372036854775807", -1),
        ] {
            let e = verify(&app(), "GET", "/apps/3/channels", &query(ts), b"", now)
                .expect_err("far off");
            assert!(e.starts_with("Timestamp expired"), "{ts} at {now}: {e}");
        }
        // Within the window at the extremes the timestamp passes (and the signature fails).
        for (ts, now) in [
            ("9223372036854775807", i64::MAX - 600),
            ("-9223372036854775808", i64::MIN + 600),
        ] {
            let e = verify(&app(), "GET", "/apps/3/channels", &query(ts), b"", now)
                .expect_err("bad signature");
            assert!(e.starts_with("Invalid signature"), "{ts} at {now}: {e}");
        }
    }
}
