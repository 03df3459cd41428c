//! HTTP API request signing (auth_version 1.0), checked exactly as docs/protocol.md §5.3 and §0 say.

use crate::app::App;
use crate::protocol::query::param;
use crate::protocol::signature;

/// How far `auth_timestamp` may be from the server's clock, in seconds.
pub const TIMESTAMP_WINDOW: i64 = 600;

/// Why a request's signature was not accepted; `Display` tells the caller exactly what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// A required `auth_*` or `body_md5` parameter is absent.
    Missing(&'static str),
    /// `auth_key` belongs to another app (or none).
    WrongKey { key: String, app_id: String },
    /// `auth_timestamp` is not a number.
    BadTimestamp(String),
    /// `auth_timestamp` is more than `TIMESTAMP_WINDOW` seconds from the server's clock.
    Expired { timestamp: i64, now: i64 },
    /// `auth_version` is not 1.0.
    BadVersion(String),
    /// `body_md5` does not match the body.
    BodyMd5 { actual: String, given: String },
    /// The signature is not the HMAC of the string to sign.
    BadSignature { to_sign: String, given: String },
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Missing("auth_version") => {
                f.write_str("Missing auth_version query parameter (1.0)")
            }
            AuthError::Missing("body_md5") => f.write_str(
                "Missing body_md5 query parameter (required when the request has a body)",
            ),
            AuthError::Missing(param) => write!(f, "Missing {param} query parameter"),
            AuthError::WrongKey { key, app_id } => {
                write!(f, "auth_key {key:?} does not belong to app {app_id:?}")
            }
            AuthError::BadTimestamp(ts) => {
                write!(f, "auth_timestamp {ts:?} is not a Unix time in seconds")
            }
            AuthError::Expired { timestamp, now } => write!(
                f,
                "Timestamp expired: Given timestamp ({timestamp}) not within {TIMESTAMP_WINDOW}s of server time ({now})"
            ),
            AuthError::BadVersion(v) => {
                write!(f, "auth_version {v:?} is not supported; use 1.0")
            }
            AuthError::BodyMd5 { actual, given } => write!(
                f,
                "body_md5 mismatch: the body's MD5 is {actual} but body_md5 is {given}"
            ),
            AuthError::BadSignature { to_sign, given } => write!(
                f,
                "Invalid signature: you should have sent HmacSHA256Hex({to_sign:?}, your_secret_key), but you sent {given:?}"
            ),
        }
    }
}

/// Verifies a signed request (auth_version 1.0).
pub fn verify(
    app: &App,
    method: &str,
    path: &str,
    query: &[(String, String)],
    body: &[u8],
    now_unix: i64,
) -> Result<(), AuthError> {
    let key = param(query, "auth_key").ok_or(AuthError::Missing("auth_key"))?;
    if key != app.key {
        return Err(AuthError::WrongKey {
            key: key.to_string(),
            app_id: app.id.clone(),
        });
    }
    let ts = param(query, "auth_timestamp").ok_or(AuthError::Missing("auth_timestamp"))?;
    let ts: i64 = ts
        .parse()
        .map_err(|_| AuthError::BadTimestamp(ts.to_string()))?;
    // abs_diff, not `(now - ts).abs()`: the timestamp is the caller's, and a far-off one
    // (-9223372036854775808) must be refused, not overflow.
    if now_unix.abs_diff(ts) > TIMESTAMP_WINDOW.unsigned_abs() {
        return Err(AuthError::Expired {
            timestamp: ts,
            now: now_unix,
        });
    }
    match param(query, "auth_version") {
        Some("1.0") => {}
        Some(v) => return Err(AuthError::BadVersion(v.to_string())),
        None => return Err(AuthError::Missing("auth_version")),
    }
    match param(query, "body_md5") {
        Some(given) => {
            let actual = signature::body_md5(body);
            if !given.eq_ignore_ascii_case(&actual) {
                return Err(AuthError::BodyMd5 {
                    actual,
                    given: given.to_string(),
                });
            }
        }
        None if !body.is_empty() => return Err(AuthError::Missing("body_md5")),
        None => {}
    }
    let sig = param(query, "auth_signature").ok_or(AuthError::Missing("auth_signature"))?;
    let to_sign = signature::http_string_to_sign(method, path, query);
    if !app
        .accepted_secrets()
        .any(|secret| signature::verify_hex(secret, &[to_sign.as_bytes()], sig))
    {
        return Err(AuthError::BadSignature {
            to_sign,
            given: sig.to_string(),
        });
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
        assert!(matches!(e, AuthError::Expired { .. }), "{e}");
        let e = verify(&app(), "POST", "/apps/3/events", &q, b"{}", 1353088179).expect_err("md5");
        assert!(matches!(e, AuthError::BodyMd5 { .. }), "{e}");
        let e = verify(&app(), "POST", "/apps/3/event", &q, body, 1353088179).expect_err("path");
        assert!(e.to_string().contains("POST\\n/apps/3/event\\n"), "{e}");
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
            assert!(matches!(e, AuthError::Expired { .. }), "{ts} at {now}: {e}");
        }
        // Within the window at the extremes the timestamp passes (and the signature fails).
        for (ts, now) in [
            ("9223372036854775807", i64::MAX - 600),
            ("-9223372036854775808", i64::MIN + 600),
        ] {
            let e = verify(&app(), "GET", "/apps/3/channels", &query(ts), b"", now)
                .expect_err("bad signature");
            assert!(
                matches!(e, AuthError::BadSignature { .. }),
                "{ts} at {now}: {e}"
            );
        }
    }

    /// Found by the `http_api` fuzz target: an extra parameter whose key held `%`, `&` or `=`
    /// was sent unencoded, so the server decoded (or split) a different key than was signed.
    #[test]
    fn signed_query_encodes_keys() {
        let app = App {
            id: "3".into(),
            key: "278d425bdf160c739803".into(),
            secret: "7ad3773142a6692b25b8".into(),
            ..App::default()
        };
        let extra = vec![
            ("A\0KE79sen%%%i%%P%%E27apq0d".to_string(), String::new()),
            ("a&b=c".to_string(), "d&e=f".to_string()),
        ];
        let q = crate::protocol::signature::signed_query(
            "278d425bdf160c739803",
            "7ad3773142a6692b25b8",
            "GET",
            "/apps/3/channels",
            b"x",
            &extra,
            1000,
        );
        assert!(
            q.starts_with(
                "auth_key=278d425bdf160c739803&auth_timestamp=1000&auth_version=1.0&body_md5="
            ),
            "{q}"
        );
        assert!(
            q.contains("&A%00KE79sen%25%25%25i%25%25P%25%25E27apq0d=&a%26b%3Dc=d%26e%3Df&"),
            "{q}"
        );
        let parsed = parse_query(&q);
        assert_eq!(&parsed[4..6], &extra[..]);
        assert_eq!(
            verify(&app, "GET", "/apps/3/channels", &parsed, b"x", 1000),
            Ok(())
        );
    }
}
