//! The origin allow-list (docs/protocol.md §10.4): which `Origin` headers may open a WebSocket
//! for an app. Patterns are host names where `*` matches any run of characters; scheme and port
//! are ignored on both sides; case does not matter. `*` alone, or no pattern at all, allows
//! everything, a missing `Origin` included.
//!
//! Pure, like the rest of `protocol`: the WebSocket layer asks, this answers.

/// The host of an `Origin` header value or of a configured pattern, lower-cased, without
/// scheme and port: `https://App.example.com:8443` → `app.example.com`. `None` for a value
/// with a path, query or fragment, or an empty host (`null`, sent by sandboxed pages and
/// `file://`, is a host like any other and matches only a pattern naming it).
pub fn host(value: &str) -> Option<String> {
    let value = value.trim();
    let rest = match value.find("://") {
        Some(i) => value.get(i + 3..)?,
        None => value,
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '@']) {
        return None;
    }
    // `[::1]:8080` keeps its brackets; otherwise a last `:digits` is a port.
    let host = match (rest.starts_with('['), rest.rfind(':')) {
        (true, _) => rest.get(..=rest.find(']')?)?,
        (false, Some(i)) if rest.get(i + 1..)?.chars().all(|c| c.is_ascii_digit()) => {
            rest.get(..i)?
        }
        _ => rest,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Why a pattern cannot be used, for the configuration error that names it.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.trim() == "*" {
        return Ok(());
    }
    match host(pattern) {
        Some(_) => Ok(()),
        None => Err(format!(
            "{pattern:?} is not a host pattern (like \"app.example.com\" or \"*.example.com\"; a scheme and port are ignored, a path is not allowed)"
        )),
    }
}

/// Whether an upgrade with this `Origin` (`None`: no header) may connect to an app that allows
/// `patterns`, missing origins being allowed when `allow_missing` is.
pub fn allowed(patterns: &[String], origin: Option<&str>, allow_missing: bool) -> bool {
    if patterns.is_empty() || patterns.iter().any(|p| p.trim() == "*") {
        return true;
    }
    let Some(origin) = origin else {
        return allow_missing;
    };
    let Some(origin) = host(origin) else {
        return false;
    };
    patterns
        .iter()
        .filter_map(|p| host(p))
        .any(|p| glob(p.as_bytes(), origin.as_bytes()))
}

/// `*` matches any run of characters (including none), everything else itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative with one backtrack point: linear in practice, never exponential.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if Some(c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|c| *c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hosts_lose_scheme_port_and_case() {
        assert_eq!(
            host("https://App.Example.com:8443").as_deref(),
            Some("app.example.com")
        );
        assert_eq!(host("localhost").as_deref(), Some("localhost"));
        assert_eq!(host("http://[::1]:6001").as_deref(), Some("[::1]"));
        assert_eq!(host("null").as_deref(), Some("null"));
        for bad in ["https://a.com/path", "a.com?x", "", "https://", "u@a.com"] {
            assert_eq!(host(bad), None, "{bad}");
        }
    }

    #[test]
    fn patterns_match_hosts_with_stars() {
        let p = list(&["app.example.com", "*.example.org", "localhost"]);
        assert!(allowed(&p, Some("https://app.example.com"), false));
        assert!(allowed(&p, Some("http://APP.example.com:3000"), false));
        assert!(allowed(&p, Some("https://a.b.example.org"), false));
        assert!(
            !allowed(&p, Some("https://example.org"), false),
            "*.example.org does not match example.org"
        );
        assert!(!allowed(&p, Some("https://evil-app.example.com"), false));
        assert!(!allowed(
            &p,
            Some("https://app.example.com.evil.net"),
            false
        ));
        assert!(allowed(&p, Some("http://localhost:5173"), false));
        assert!(!allowed(&p, Some("null"), false));
    }

    #[test]
    fn missing_origins_and_allow_all() {
        let p = list(&["app.example.com"]);
        assert!(!allowed(&p, None, false));
        assert!(allowed(&p, None, true));
        assert!(allowed(&[], None, false), "no list: everything");
        assert!(allowed(&list(&["*"]), Some("https://x.y"), false));
        assert!(allowed(&list(&["*"]), None, false));
    }

    #[test]
    fn globs_backtrack_without_blowing_up() {
        assert!(glob(b"a*b*c", b"aXbYbZc"));
        assert!(!glob(b"a*b*c", b"aXbYbZ"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"*x", b"yyyy"));
        let long = "a".repeat(5000);
        assert!(!glob(b"*a*a*a*a*b", long.as_bytes()));
    }

    #[test]
    fn patterns_are_checked() {
        assert!(check_pattern("*.example.com").is_ok());
        assert!(check_pattern("https://app.example.com:443").is_ok());
        assert!(check_pattern("*").is_ok());
        let e = check_pattern("https://app.example.com/path").expect_err("a path");
        assert!(e.contains("path"), "{e}");
        assert!(check_pattern("").is_err());
    }
}
