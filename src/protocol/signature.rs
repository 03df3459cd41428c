//! HMAC-SHA256 signatures: channel authorization, user sign-in and the HTTP API.
//!
//! Every comparison goes through `Hmac::verify_slice`, which is constant-time, so an attacker
//! cannot learn a valid signature byte by byte from response timings.

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, parts: &[&[u8]]) -> HmacSha256 {
    // `new_from_slice` accepts keys of any length for HMAC, so this cannot fail.
    #[allow(clippy::unreachable)]
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for p in parts {
        m.update(p);
    }
    m
}

/// Lowercase hex HMAC-SHA256 of `message` keyed with `secret`.
pub fn sign(secret: &str, message: &str) -> String {
    hex::encode(mac(secret, &[message.as_bytes()]).finalize().into_bytes())
}

/// Checks a lowercase/uppercase hex signature against the HMAC of `message`, in constant time.
pub fn verify_hex(secret: &str, message: &[&[u8]], signature_hex: &str) -> bool {
    let Ok(sig) = hex::decode(signature_hex) else {
        return false;
    };
    mac(secret, message).verify_slice(&sig).is_ok()
}

/// Checks the `auth` field of a `pusher:subscribe`: `"<key>:<hex>"` over
/// `socket_id:channel[:channel_data]`, computed over the raw strings the client sent.
pub fn verify_channel_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> bool {
    let Some(sig) = auth_signature_for_key(key, auth) else {
        return false;
    };
    let mut parts: Vec<&[u8]> = vec![socket_id.as_bytes(), b":", channel.as_bytes()];
    if let Some(data) = channel_data {
        parts.push(b":");
        parts.push(data.as_bytes());
    }
    verify_hex(secret, &parts, sig)
}

/// Checks the `auth` field of a `pusher:signin`: `"<key>:<hex>"` over
/// `socket_id::user::user_data`.
pub fn verify_user_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &str,
    auth: &str,
) -> bool {
    let Some(sig) = auth_signature_for_key(key, auth) else {
        return false;
    };
    verify_hex(
        secret,
        &[socket_id.as_bytes(), b"::user::", user_data.as_bytes()],
        sig,
    )
}

/// Splits `"<key>:<hex>"` at the first colon and returns the hex part when the key matches.
fn auth_signature_for_key<'a>(key: &str, auth: &'a str) -> Option<&'a str> {
    let (k, sig) = auth.split_once(':')?;
    (k == key).then_some(sig)
}

/// Builds the string an HTTP API request signs: `METHOD\nPATH\nk=v&k=v`, with the query pairs
/// already decoded; keys are lowercased, `auth_signature` dropped, and pairs sorted by key.
pub fn http_string_to_sign(method: &str, path: &str, query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .filter(|(k, _)| k != "auth_signature")
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path,
        query.join("&")
    )
}

/// What `signed_query` escapes: everything but RFC 3986's unreserved characters, so the usual
/// keys and values (`auth_key`, `1.0`) go on the wire as they are signed.
const QUERY_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The query string of a signed HTTP API request (for clients: the CLI and the load
/// generator): `auth_*` and `body_md5` (when there is a body), the `extra` parameters, then
/// `auth_signature`. Keys and values are percent-encoded on the wire and signed decoded, since
/// the server decodes both before checking; `path` is the decoded path the server verifies
/// (without any server prefix).
pub fn signed_query(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    body: &[u8],
    extra: &[(String, String)],
    timestamp: u64,
) -> String {
    let mut query = vec![
        ("auth_key".to_string(), key.to_string()),
        ("auth_timestamp".to_string(), timestamp.to_string()),
        ("auth_version".to_string(), "1.0".to_string()),
    ];
    if !body.is_empty() {
        query.push(("body_md5".to_string(), body_md5(body)));
    }
    query.extend(extra.iter().cloned());
    let sig = sign(secret, &http_string_to_sign(method, path, &query));
    let encode = |v: &str| percent_encoding::utf8_percent_encode(v, QUERY_ESCAPED).to_string();
    query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .chain(std::iter::once(format!("auth_signature={sig}")))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lowercase hex MD5 of a request body, as signed in `body_md5`.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

#[cfg(test)]
mod tests {
    //! The test vectors of docs/protocol.md §4.2.
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn private_channel_vector() {
        assert_eq!(
            sign(SECRET, "1234.1234:private-foobar"),
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        let auth =
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
        assert!(verify_channel_auth(
            KEY,
            SECRET,
            "1234.1234",
            "private-foobar",
            None,
            auth
        ));
        assert!(!verify_channel_auth(
            KEY,
            SECRET,
            "1234.1235",
            "private-foobar",
            None,
            auth
        ));
        assert!(!verify_channel_auth(
            "otherkey",
            SECRET,
            "1234.1234",
            "private-foobar",
            None,
            auth
        ));
    }

    #[test]
    fn presence_channel_vector() {
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        let auth =
            "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80";
        assert!(verify_channel_auth(
            KEY,
            SECRET,
            "1234.1234",
            "presence-foobar",
            Some(data),
            auth
        ));
        assert!(!verify_channel_auth(
            KEY,
            SECRET,
            "1234.1234",
            "presence-foobar",
            Some("{}"),
            auth
        ));
    }

    #[test]
    fn user_vector() {
        let auth =
            "278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba";
        assert!(verify_user_auth(
            KEY,
            SECRET,
            "1234.1234",
            r#"{"id":"12345"}"#,
            auth
        ));
        assert!(!verify_user_auth(
            KEY,
            SECRET,
            "1234.1234",
            r#"{"id":"1234"}"#,
            auth
        ));
    }

    #[test]
    fn node_vectors() {
        assert!(verify_channel_auth(
            "aaaa",
            "tofu",
            "123.456",
            "test",
            None,
            "aaaa:efa6cf7644a0b35cba36aa0f776f3cbf7bb60e95ea2696bde1dbe8403b61bd7c"
        ));
        assert!(verify_channel_auth(
            "aaaa",
            "tofu",
            "123.456",
            "test",
            Some(r#"{"foo":"bar"}"#),
            "aaaa:f41faf9ead2ea76772cc6b1168363057459f02499ae4d92e88229dc7f4efa2d4"
        ));
        assert!(verify_user_auth(
            "aaaa",
            "tofu",
            "123.456",
            r#"{"id":"45678"}"#,
            "aaaa:f4b1fdeea7c93e32648c7230e32b172057c5623cace6cfce791c6e7035e0babd"
        ));
    }

    #[test]
    fn http_api_doc_vector() {
        let body = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let md5 = body_md5(body.as_bytes());
        assert_eq!(md5, "ec365a775a4cd0599faeb73354201b6f");
        let q = vec![
            ("auth_key".to_string(), KEY.to_string()),
            ("auth_timestamp".to_string(), "1353088179".to_string()),
            ("auth_version".to_string(), "1.0".to_string()),
            ("body_md5".to_string(), md5),
        ];
        let s = http_string_to_sign("POST", "/apps/3/events", &q);
        assert_eq!(
            sign(SECRET, &s),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn http_api_node_vector() {
        // Given out of order and with an upper-case key and the signature itself: all normalised.
        let q = vec![
            ("body_md5".to_string(), body_md5(b"example body")),
            ("auth_signature".to_string(), "ignored".to_string()),
            ("AUTH_KEY".to_string(), "f00d".to_string()),
            ("auth_version".to_string(), "1.0".to_string()),
            ("auth_timestamp".to_string(), "1234567890".to_string()),
        ];
        let s = http_string_to_sign("get", "/event", &q);
        assert_eq!(
            s,
            "GET\n/event\nauth_key=f00d&auth_timestamp=1234567890&auth_version=1.0&body_md5=165d5e6d7ca8f73b3853ce45addf42fc"
        );
        assert_eq!(
            sign("tofu", &s),
            "a650196dc427ebe837226f8565ca9232198c6d1b9455eaa72374a9dc0b620e7b"
        );
    }

    #[test]
    fn webhook_node_vector() {
        let body = r#"{"time_ms":1403175510755,"events":[{"channel":"test_channel","name":"channel_vacated"}]}"#;
        assert_eq!(
            sign("tofu", body),
            "c17257e92037cd7de407ebc1ed174ceb7b2e518db127f44411b9ffc4f5b28cc5"
        );
    }
}
