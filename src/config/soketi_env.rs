//! A Soketi deployment's environment, unchanged (docs/migrating.md): the `SOKETI_*` variables
//! Soketi reads are mapped onto Clarion's settings when present. They sit between the config
//! file and Clarion's own flags and `CLARION_*` variables, which still win. Each variable taken
//! is listed in a start-up line, and each one Clarion has no equivalent for gets a warning.

use super::Config;
use crate::app::{App, Webhook};

/// What the Soketi environment gave: the variables taken, and those not supported (with why).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub taken: Vec<String>,
    pub unsupported: Vec<(String, &'static str)>,
}

/// Variables Clarion has no equivalent for, with what to do instead.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("DEBUG", "use RUST_LOG=debug"),
    ("SSL_PASS", "give tls_key an unencrypted key"),
    (
        "ADAPTER_CLUSTER_PREFIX",
        "the cluster adapter is not supported; use adapter = \"redis\"",
    ),
    (
        "DB_REDIS_KEY_PREFIX",
        "Clarion has one prefix for keys and channels: redis_prefix (SOKETI_ADAPTER_REDIS_PREFIX)",
    ),
    (
        "DB_POOLING_ENABLED",
        "the app store keeps a small pool of its own",
    ),
    (
        "DB_POOLING_MIN",
        "the app store keeps a small pool of its own",
    ),
    (
        "DB_POOLING_MAX",
        "the app store keeps a small pool of its own",
    ),
    (
        "APP_MANAGER_DYNAMODB_TABLE",
        "DynamoDB is not an app store; use postgres or mysql",
    ),
    (
        "APP_MANAGER_DYNAMODB_REGION",
        "DynamoDB is not an app store; use postgres or mysql",
    ),
    (
        "APP_MANAGER_DYNAMODB_ENDPOINT",
        "DynamoDB is not an app store; use postgres or mysql",
    ),
    ("APP_MANAGER_MYSQL_VERSION", "not needed"),
    ("APP_MANAGER_POSTGRES_VERSION", "not needed"),
    ("APP_MANAGER_MYSQL_USE_V2", "not needed"),
    ("METRICS_DRIVER", "Prometheus is the only driver"),
    ("QUEUE_DRIVER", "webhooks are queued in memory per node"),
    ("QUEUE_REDIS_CONCURRENCY", "see webhook_concurrency"),
    ("RATE_LIMITER_DRIVER", "rate limits are per node"),
];

fn bool_of(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Soketi's `-1` (or any negative) is unlimited: Clarion's 0.
fn count(v: &str) -> Option<u64> {
    let n: f64 = v.trim().parse().ok()?;
    Some(if n < 0.0 { 0 } else { n as u64 })
}

/// Applies the `SOKETI_*` variables `var` answers (`None` when unset) onto `c`.
pub fn apply(c: &mut Config, var: &dyn Fn(&str) -> Option<String>) -> Result<Report, String> {
    let mut report = Report::default();
    let mut get = |name: &str| -> Option<String> {
        let full = format!("SOKETI_{name}");
        let v = var(&full).filter(|v| !v.is_empty())?;
        report.taken.push(full);
        Some(v)
    };
    let bad = |name: &str, v: &str| format!("SOKETI_{name}: {v:?} is not usable");
    macro_rules! number {
        ($name:expr) => {
            match get($name) {
                None => None,
                Some(v) => Some(count(&v).ok_or_else(|| bad($name, &v))?),
            }
        };
    }

    if let Some(v) = get("PORT") {
        c.port = v.parse().map_err(|_| bad("PORT", &v))?;
    }
    if let Some(v) = get("PATH_PREFIX") {
        c.path_prefix = v;
    }
    if let Some(v) = get("SSL_CERT") {
        c.tls_cert = v;
    }
    if let Some(v) = get("SSL_KEY") {
        c.tls_key = v;
    }
    if let Some(ms) = number!("SHUTDOWN_GRACE_PERIOD") {
        c.shutdown_grace_seconds = ms.div_ceil(1000).max(1);
    }
    if let Some(v) = get("METRICS_ENABLED") {
        if !bool_of(&v).ok_or_else(|| bad("METRICS_ENABLED", &v))? {
            c.metrics_port = 0;
        }
    }
    if let Some(p) = number!("METRICS_SERVER_PORT") {
        if c.metrics_port != 0 {
            c.metrics_port =
                u16::try_from(p).map_err(|_| bad("METRICS_SERVER_PORT", &p.to_string()))?;
        }
    }
    if let Some(v) = get("METRICS_PROMETHEUS_PREFIX") {
        c.metrics_prefix = v.trim_end_matches('_').to_string();
    }

    // The adapter and its Redis.
    if let Some(v) = get("ADAPTER_DRIVER") {
        match v.as_str() {
            "local" | "redis" => c.adapter = v,
            other => {
                return Err(format!(
                    "SOKETI_ADAPTER_DRIVER: {other:?} is not supported; Clarion has \"local\" and \"redis\""
                ))
            }
        }
    }
    if let Some(v) = get("ADAPTER_REDIS_PREFIX") {
        c.redis_prefix = v;
    }
    let host = get("DB_REDIS_HOST");
    let port = get("DB_REDIS_PORT");
    let db = get("DB_REDIS_DB");
    let user = get("DB_REDIS_USERNAME");
    let password = get("DB_REDIS_PASSWORD");
    if host.is_some() || port.is_some() || db.is_some() || user.is_some() || password.is_some() {
        let auth = match (user, password) {
            (Some(u), Some(p)) => format!("{u}:{p}@"),
            (None, Some(p)) => format!(":{p}@"),
            (Some(u), None) => format!("{u}@"),
            (None, None) => String::new(),
        };
        c.redis_url = format!(
            "redis://{auth}{}:{}/{}",
            host.unwrap_or_else(|| "127.0.0.1".into()),
            port.unwrap_or_else(|| "6379".into()),
            db.unwrap_or_else(|| "0".into())
        );
    }
    if let Some(v) = get("DB_REDIS_SENTINELS") {
        #[derive(serde::Deserialize)]
        struct Node {
            host: String,
            port: u16,
        }
        let nodes: Vec<Node> =
            serde_json::from_str(&v).map_err(|e| format!("SOKETI_DB_REDIS_SENTINELS: {e}"))?;
        let password = get("DB_REDIS_SENTINEL_PASSWORD");
        let auth = password.map_or(String::new(), |p| format!(":{p}@"));
        c.redis_mode = "sentinel".into();
        c.redis_sentinels = nodes
            .iter()
            .map(|n| format!("redis://{auth}{}:{}", n.host, n.port))
            .collect();
        c.redis_sentinel_master =
            get("DB_REDIS_INSTANCE_NAME").unwrap_or_else(|| "mymaster".into());
    }

    // Apps in a database.
    if let Some(v) = get("APP_MANAGER_DRIVER") {
        let (store, kind) = match v.as_str() {
            "array" => ("file", ""),
            "mysql" => ("mysql", "MYSQL"),
            "postgres" => ("postgres", "POSTGRES"),
            other => {
                return Err(format!(
                    "SOKETI_APP_MANAGER_DRIVER: {other:?} is not supported; Clarion reads apps from the file, postgres or mysql"
                ))
            }
        };
        c.app_store = store.into();
        if !kind.is_empty() {
            let part = |p: &str, default: &str, get: &mut dyn FnMut(&str) -> Option<String>| {
                get(&format!("DB_{kind}_{p}")).unwrap_or_else(|| default.to_string())
            };
            let (user, pw, h, port, db) = (
                part("USERNAME", "root", &mut get),
                part("PASSWORD", "password", &mut get),
                part("HOST", "127.0.0.1", &mut get),
                part(
                    "PORT",
                    if kind == "MYSQL" { "3306" } else { "5432" },
                    &mut get,
                ),
                part("DATABASE", "main", &mut get),
            );
            c.app_store_url = format!("{store}://{user}:{pw}@{h}:{port}/{db}");
            if let Some(t) = get(&format!("APP_MANAGER_{kind}_TABLE")) {
                c.app_store_table = t;
            }
        }
    }

    // The default app (Soketi's array driver): Soketi's defaults for what is not set.
    let id = get("DEFAULT_APP_ID");
    let key = get("DEFAULT_APP_KEY");
    let secret = get("DEFAULT_APP_SECRET");
    if id.is_some() || key.is_some() || secret.is_some() {
        let mut app = App {
            id: id.unwrap_or_else(|| "app-id".into()),
            key: key.unwrap_or_else(|| "app-key".into()),
            secret: secret.unwrap_or_else(|| "app-secret".into()),
            ..App::default()
        };
        if let Some(n) = number!("DEFAULT_APP_MAX_CONNS").or(number!("DEFAULT_APP_MAX_CONNECTIONS"))
        {
            app.max_connections = n;
        }
        for (name, slot) in [
            (
                "DEFAULT_APP_ENABLE_CLIENT_MESSAGES",
                &mut app.enable_client_messages,
            ),
            ("DEFAULT_APP_ENABLED", &mut app.enabled),
            (
                "DEFAULT_APP_USER_AUTHENTICATION",
                &mut app.enable_user_authentication,
            ),
        ] {
            if let Some(v) = get(name) {
                *slot = bool_of(&v).ok_or_else(|| bad(name, &v))?;
            }
        }
        let rate = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        if let Some(n) = number!("DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC") {
            app.max_backend_events_per_second = rate(n);
        }
        if let Some(n) = number!("DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC") {
            app.max_client_events_per_second = rate(n);
        }
        if let Some(n) = number!("DEFAULT_APP_MAX_READ_REQ_PER_SEC") {
            app.max_read_requests_per_second = rate(n);
        }
        if let Some(v) = get("DEFAULT_APP_WEBHOOKS") {
            app.webhooks = serde_json::from_str::<Vec<Webhook>>(&v)
                .map_err(|e| format!("SOKETI_DEFAULT_APP_WEBHOOKS: {e}"))?;
        }
        // Soketi's server-wide limits, which Clarion keeps per app: they apply to this app.
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if let Some(ms) = number!("USER_AUTHENTICATION_TIMEOUT") {
            app.user_authentication_timeout = ms.div_ceil(1000).max(1);
        }
        if let Some(n) = number!("PRESENCE_MAX_MEMBERS") {
            app.max_presence_members_per_channel = n;
        }
        if let Some(kb) = number!("PRESENCE_MAX_MEMBER_SIZE") {
            app.max_presence_member_size = size(kb.saturating_mul(1024));
        }
        if let Some(n) = number!("CHANNEL_LIMITS_MAX_NAME_LENGTH") {
            app.max_channel_name_length = size(n);
        }
        if let Some(n) = number!("EVENT_MAX_CHANNELS_AT_ONCE") {
            app.max_event_channels = size(n);
        }
        if let Some(n) = number!("EVENT_MAX_NAME_LENGTH") {
            app.max_event_name_length = size(n);
        }
        if let Some(kb) = number!("EVENT_MAX_SIZE_IN_KB") {
            app.max_event_payload_size = size(kb.saturating_mul(1024));
        }
        if let Some(n) = number!("EVENT_MAX_BATCH_SIZE") {
            app.max_event_batch_size = size(n);
        }
        if c.apps.iter().any(|a| a.id == app.id || a.key == app.key) {
            return Err(format!(
                "SOKETI_DEFAULT_APP_ID/KEY: {:?} is also an app of the config file",
                app.id
            ));
        }
        c.apps.push(app);
    }
    for (name, why) in UNSUPPORTED {
        let full = format!("SOKETI_{name}");
        if var(&full).is_some() {
            report.unsupported.push((full, why));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<(Config, Report), String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut c = Config::default();
        let r = apply(&mut c, &|k| map.get(k).cloned())?;
        Ok((c, r))
    }

    #[test]
    fn a_soketi_deployment_maps_onto_clarion() {
        let (c, r) = with(&[
            ("SOKETI_PORT", "6002"),
            ("SOKETI_DEFAULT_APP_ID", "1"),
            ("SOKETI_DEFAULT_APP_KEY", "k"),
            ("SOKETI_DEFAULT_APP_SECRET", "s"),
            ("SOKETI_DEFAULT_APP_MAX_CONNS", "-1"),
            ("SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES", "true"),
            ("SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC", "200"),
            ("SOKETI_USER_AUTHENTICATION_TIMEOUT", "3000"),
            ("SOKETI_EVENT_MAX_SIZE_IN_KB", "20"),
            ("SOKETI_ADAPTER_DRIVER", "redis"),
            ("SOKETI_DB_REDIS_HOST", "redis.internal"),
            ("SOKETI_DB_REDIS_PASSWORD", "pw"),
            ("SOKETI_METRICS_SERVER_PORT", "9700"),
            ("SOKETI_METRICS_PROMETHEUS_PREFIX", "soketi_"),
            ("SOKETI_SHUTDOWN_GRACE_PERIOD", "2500"),
            ("SOKETI_DEBUG", "1"),
            ("SOKETI_QUEUE_DRIVER", "redis"),
        ])
        .expect("maps");
        assert_eq!(c.port, 6002);
        let app = c.apps.first().expect("the default app");
        assert_eq!(
            (app.id.as_str(), app.key.as_str(), app.secret.as_str()),
            ("1", "k", "s")
        );
        assert_eq!(app.max_connections, 0, "-1 is unlimited");
        assert!(app.enable_client_messages);
        assert_eq!(app.max_backend_events_per_second, 200);
        assert_eq!(
            app.user_authentication_timeout, 3,
            "milliseconds to seconds"
        );
        assert_eq!(app.max_event_payload_size, 20 * 1024);
        assert_eq!(c.adapter, "redis");
        assert_eq!(c.redis_url, "redis://:pw@redis.internal:6379/0");
        assert_eq!(
            (c.metrics_port, c.metrics_prefix.as_str()),
            (9700, "soketi")
        );
        assert_eq!(c.shutdown_grace_seconds, 3);
        assert!(r.taken.contains(&"SOKETI_DEFAULT_APP_ID".to_string()));
        let unsupported: Vec<&str> = r.unsupported.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(unsupported, ["SOKETI_DEBUG", "SOKETI_QUEUE_DRIVER"]);
    }

    #[test]
    fn stores_sentinels_and_refusals() {
        let (c, _) = with(&[
            ("SOKETI_APP_MANAGER_DRIVER", "postgres"),
            ("SOKETI_DB_POSTGRES_HOST", "db"),
            ("SOKETI_DB_POSTGRES_DATABASE", "realtime"),
            ("SOKETI_APP_MANAGER_POSTGRES_TABLE", "soketi_apps"),
            (
                "SOKETI_DB_REDIS_SENTINELS",
                r#"[{"host":"s1","port":26379}]"#,
            ),
            ("SOKETI_DB_REDIS_INSTANCE_NAME", "main"),
        ])
        .expect("maps");
        assert_eq!(c.app_store, "postgres");
        assert_eq!(c.app_store_url, "postgres://root:password@db:5432/realtime");
        assert_eq!(c.app_store_table, "soketi_apps");
        assert_eq!(c.redis_mode, "sentinel");
        assert_eq!(c.redis_sentinels, ["redis://s1:26379"]);
        assert_eq!(c.redis_sentinel_master, "main");
        let e = with(&[("SOKETI_ADAPTER_DRIVER", "nats")]).expect_err("not supported");
        assert!(e.starts_with("SOKETI_ADAPTER_DRIVER"), "{e}");
        let e = with(&[
            ("SOKETI_DEFAULT_APP_MAX_CONNS", "many"),
            ("SOKETI_DEFAULT_APP_ID", "1"),
        ])
        .expect_err("not a number");
        assert!(e.starts_with("SOKETI_DEFAULT_APP_MAX_CONNS"), "{e}");
        let (c, r) = with(&[]).expect("nothing");
        assert!(c.apps.is_empty() && r == Report::default());
    }
}
