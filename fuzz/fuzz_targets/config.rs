//! Fuzzes configuration loading: `clarion::config::Config::from_toml` on arbitrary text (invalid
//! UTF-8 replaced), then `finish()` (validation and normalisation; it may try to read TLS files
//! the document names, which must fail cleanly, not panic) when the document parses.
//!
//! Beyond "does not panic" it asserts, for a configuration that `finish()` accepts:
//! - there is at least one app, every app validates and the app registry builds;
//! - `path_prefix` is normalised: empty, or starting with `/` and not ending with one;
//! - `finish()` is idempotent: running it again succeeds and changes nothing;
//! - `masked_toml()` (what `clarion check-config` prints) parses back to the same
//!   configuration, with every app secret replaced by `********`, and URLs (Redis, webhooks)
//!   changed only where they carry user info, whose password never shows.

#![no_main]

use clarion::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(mut cfg) = Config::from_toml(&text) else {
        return;
    };
    if cfg.finish().is_err() {
        return;
    }
    assert!(!cfg.apps.is_empty());
    for (i, app) in cfg.apps.iter().enumerate() {
        app.validate(&format!("apps[{i}]"))
            .expect("finish() let an invalid app through");
    }
    cfg.registry()
        .expect("finish() accepted apps the registry refuses");
    let p = &cfg.path_prefix;
    assert!(
        p.is_empty() || (p.starts_with('/') && !p.ends_with('/')),
        "{p:?}"
    );

    let mut again = cfg.clone();
    again.finish().expect("finish() is not idempotent");
    assert_eq!(again, cfg);

    let shown = cfg.masked_toml();
    let back = match Config::from_toml(&shown) {
        Ok(c) => c,
        Err(e) => panic!("masked_toml() does not parse back ({e}):\n{shown}"),
    };
    // URLs may be masked (the Redis URL, webhook URLs): only where they hold an '@', and then
    // with the mask in place. Everything else must come back exactly, secrets as the mask.
    let mut expected = cfg.clone();
    for app in &mut expected.apps {
        app.secret = "********".into();
    }
    expected.using_development_app = false;
    check_masked_url(&cfg.redis_url, &back.redis_url);
    expected.redis_url = back.redis_url.clone();
    for (app, back_app) in expected.apps.iter_mut().zip(&back.apps) {
        for (hook, back_hook) in app.webhooks.iter_mut().zip(&back_app.webhooks) {
            check_masked_url(&hook.url, &back_hook.url);
            hook.url = back_hook.url.clone();
        }
    }
    assert_eq!(
        back, expected,
        "masked_toml() changed the settings:\n{shown}"
    );
});

/// A masked URL is the original, or the original had user info (an '@') and the mask replaced
/// its password: `user:password@` never survives.
fn check_masked_url(original: &str, masked: &str) {
    if masked == original {
        let userinfo = original
            .split_once("://")
            .and_then(|(_, rest)| rest.rsplit_once('@'))
            .map(|(userinfo, _)| userinfo);
        // Unchanged is right when there is no user info, or it is already masked.
        assert!(
            userinfo.is_none_or(|u| u == "********" || u.ends_with(":********")),
            "{original:?} shown unmasked"
        );
        return;
    }
    assert!(original.contains('@'), "{original:?} changed to {masked:?}");
    assert!(
        masked.contains("********"),
        "{original:?} changed to {masked:?}"
    );
    // Only where the text before `://` is a URL scheme: otherwise the "password" may well also
    // stand in that non-scheme prefix, and no client would take the text for a URL anyway.
    let scheme_ok = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    };
    if let Some(password) = original
        .split_once("://")
        .filter(|(scheme, _)| scheme_ok(scheme))
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty())
    {
        assert!(
            !masked.contains(&format!(":{password}@")),
            "{original:?} shown as {masked:?}"
        );
    }
}
