//! One row of Soketi's `apps` table as an app: its column names, `-1` (or NULL) meaning
//! unlimited for the counts and rates, sizes in KB, booleans as `1`/`0` or `true`/`false`,
//! `webhooks` as JSON. Every value arrives as text (the query casts it), so PostgreSQL's and
//! MySQL's types read the same way.

use crate::app::{App, Webhook};

/// The columns read, when the table has them; only `id`, `key` and `secret` are required.
/// The last two are Clarion's (a secret rotation's grace, docs/app-store.md).
pub const COLUMNS: &[&str] = &[
    "id",
    "key",
    "secret",
    "enabled",
    "enable_client_messages",
    "enable_user_authentication",
    "max_connections",
    "max_backend_events_per_sec",
    "max_client_events_per_sec",
    "max_read_req_per_sec",
    "max_presence_members_per_channel",
    "max_presence_member_size_in_kb",
    "max_channel_name_length",
    "max_event_channels_at_once",
    "max_event_name_length",
    "max_event_payload_in_kb",
    "max_event_batch_size",
    "webhooks",
    "previous_secret",
    "previous_secret_until",
];

fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "on" => Some(true),
        "0" | "f" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A count or rate: negative means unlimited (0 here), a fraction is cut.
fn count(v: &str) -> Option<u64> {
    let n: f64 = v.trim().parse().ok()?;
    Some(if n < 0.0 { 0 } else { n as u64 })
}

/// The app in a row, or why it is left out (naming the row's id and the column).
pub fn app(get: &dyn Fn(&str) -> Option<String>) -> Result<App, String> {
    let id = get("id").unwrap_or_default();
    let bad = |column: &str, v: &str| format!("app {id:?}: column {column}: {v:?} is not usable");
    let mut app = App {
        id: id.clone(),
        key: get("key").unwrap_or_default(),
        secret: get("secret").unwrap_or_default(),
        ..App::default()
    };
    if app.id.is_empty() || app.key.is_empty() || app.secret.is_empty() {
        return Err(format!("app {id:?}: id, key and secret must not be empty"));
    }
    let flag = |column: &str, slot: &mut bool| -> Result<(), String> {
        if let Some(v) = get(column) {
            *slot = boolean(&v).ok_or_else(|| bad(column, &v))?;
        }
        Ok(())
    };
    flag("enabled", &mut app.enabled)?;
    flag("enable_client_messages", &mut app.enable_client_messages)?;
    flag(
        "enable_user_authentication",
        &mut app.enable_user_authentication,
    )?;
    let number = |column: &str| -> Result<Option<u64>, String> {
        match get(column) {
            None => Ok(None),
            Some(v) => count(&v).map(Some).ok_or_else(|| bad(column, &v)),
        }
    };
    // Soketi's unlimited (-1) and a NULL both mean "no limit" for these.
    app.max_connections = number("max_connections")?.unwrap_or(0);
    let rate = |n: Option<u64>| u32::try_from(n.unwrap_or(0)).unwrap_or(u32::MAX);
    app.max_backend_events_per_second = rate(number("max_backend_events_per_sec")?);
    app.max_client_events_per_second = rate(number("max_client_events_per_sec")?);
    app.max_read_requests_per_second = rate(number("max_read_req_per_sec")?);
    // These keep Clarion's default when NULL.
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    if let Some(n) = number("max_presence_members_per_channel")? {
        app.max_presence_members_per_channel = n;
    }
    if let Some(kb) = number("max_presence_member_size_in_kb")? {
        app.max_presence_member_size = size(kb.saturating_mul(1024));
    }
    if let Some(n) = number("max_channel_name_length")? {
        app.max_channel_name_length = size(n);
    }
    if let Some(n) = number("max_event_channels_at_once")? {
        app.max_event_channels = size(n);
    }
    if let Some(n) = number("max_event_name_length")? {
        app.max_event_name_length = size(n);
    }
    if let Some(kb) = number("max_event_payload_in_kb")? {
        app.max_event_payload_size = size(kb.saturating_mul(1024));
    }
    if let Some(n) = number("max_event_batch_size")? {
        app.max_event_batch_size = size(n);
    }
    if let Some(hooks) = get("webhooks").filter(|h| !h.trim().is_empty() && h.trim() != "null") {
        app.webhooks = serde_json::from_str::<Vec<Webhook>>(&hooks)
            .map_err(|e| format!("app {id:?}: column webhooks: {e}"))?;
    }
    if let (Some(previous), Some(until)) = (get("previous_secret"), get("previous_secret_until")) {
        let until = count(&until).ok_or_else(|| bad("previous_secret_until", &until))?;
        if !previous.is_empty() {
            app.previous_secret = Some((previous, until));
        }
    }
    app.validate(&format!("app {id:?}"))?;
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn row(pairs: &[(&str, &str)]) -> Result<App, String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        app(&|c| map.get(c).cloned())
    }

    #[test]
    fn soketi_units_and_unlimited_values_are_translated() {
        let a = row(&[
            ("id", "1"),
            ("key", "k"),
            ("secret", "s"),
            ("enabled", "1"),
            ("enable_client_messages", "true"),
            ("max_connections", "-1"),
            ("max_backend_events_per_sec", "250"),
            ("max_event_payload_in_kb", "100"),
            ("max_presence_member_size_in_kb", "2"),
            (
                "webhooks",
                r#"[{"url":"https://h.test/hook","event_types":["channel_occupied"]}]"#,
            ),
        ])
        .expect("an app");
        assert!(a.enabled && a.enable_client_messages);
        assert_eq!(a.max_connections, 0, "-1 is unlimited");
        assert_eq!(a.max_backend_events_per_second, 250);
        assert_eq!(a.max_event_payload_size, 100 * 1024);
        assert_eq!(a.max_presence_member_size, 2048);
        assert_eq!(a.webhooks.len(), 1);
        assert_eq!(
            a.max_event_batch_size,
            App::default().max_event_batch_size,
            "NULL keeps the default"
        );
    }

    #[test]
    fn a_bad_row_is_named() {
        let e = row(&[
            ("id", "7"),
            ("key", "k"),
            ("secret", "s"),
            ("enabled", "maybe"),
        ])
        .expect_err("not a boolean");
        assert!(e.contains("\"7\"") && e.contains("enabled"), "{e}");
        let e = row(&[("id", "8"), ("key", ""), ("secret", "s")]).expect_err("no key");
        assert!(e.contains("\"8\""), "{e}");
    }
}
