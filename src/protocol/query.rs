//! URL query strings and path segments as the Pusher HTTP API and WebSocket URL use them:
//! percent-decoded, order kept (signatures sort them later), keys looked up case-insensitively.
//!
//! Shared by the server's router, the signature check and the command-line client, which signs
//! requests the way the server checks them.

use percent_encoding::percent_decode_str;

/// Splits a raw query string into decoded pairs, keeping their order. A query is
/// form-encoded, so `+` is a space (Python's `urlencode` and PHP's `http_build_query` send
/// spaces that way, and sign the value with the space); a literal `+` arrives as `%2B`.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_form(k), decode_form(v))
        })
        .collect()
}

/// Decodes one query component: `+` to a space, then percent-decoding.
fn decode_form(s: &str) -> String {
    if s.contains('+') {
        decode(&s.replace('+', " "))
    } else {
        decode(s)
    }
}

/// Percent-decodes a path component (where `+` is itself) or, through `parse_query`, a query
/// component; invalid UTF-8 is replaced, not fatal.
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
    fn plus_is_a_space_in_a_query_but_not_in_a_path() {
        let q = parse_query("info=user_count,+subscription_count&p=a%2Bb&k+1=x");
        assert_eq!(param(&q, "info"), Some("user_count, subscription_count"));
        assert_eq!(param(&q, "p"), Some("a+b"));
        assert_eq!(param(&q, "k 1"), Some("x"));
        assert_eq!(decode("a+b%20c"), "a+b c");
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
