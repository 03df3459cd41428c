//! URL query strings and path segments as the Pusher HTTP API and WebSocket URL use them:
//! percent-decoded, order kept (signatures sort them later), keys looked up case-insensitively.
//!
//! Shared by the server's router, the signature check and the command-line client, which signs
//! requests the way the server checks them.

use percent_encoding::percent_decode_str;

/// Splits a raw query string into percent-decoded pairs, keeping their order.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decodes a query or path component; invalid UTF-8 is replaced, not fatal.
pub fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The value of a query parameter, by case-insensitive key.
pub fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_encoded_values() {
        let q = parse_query("info=user_count%2Csubscription_count&x");
        assert_eq!(param(&q, "INFO"), Some("user_count,subscription_count"));
        assert_eq!(param(&q, "x"), Some(""));
    }

    #[test]
    fn keeps_order_and_repairs_bad_utf8() {
        let q = parse_query("b=2&a=1&&c=%FF");
        let keys: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(param(&q, "c"), Some("\u{FFFD}"));
        assert_eq!(decode("%2Fapps%2F1"), "/apps/1");
    }
}
