//! Configuration: defaults, then the TOML file, then environment variables, then flags.
//!
//! A file that does not parse or validate is an error at start, named by key: a mounted config
//! that is silently ignored is worse than no server at all.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::app::{App, AppRegistry};
use crate::cli::dotenv::DotEnv;
use crate::cli::Cli;
use crate::net::client_ip::TrustedProxies;
use crate::net::tls::Tls;
pub use redis_target::{RedisTarget, Sentinels, Servers};

mod redis_target;
pub mod soketi_env;

/// What `parse_parts` hands over: apps, TLS for the main port, trusted proxies, Redis.
type Parts = (
    AppRegistry,
    Option<Tls>,
    TrustedProxies,
    Option<RedisTarget>,
);

/// Server-wide settings plus the app list.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address.
    pub host: String,
    /// Listen port for WebSocket and HTTP API (0 picks a free port).
    pub port: u16,
    /// Path prefix the server is mounted under (`""` or like `/ws`).
    pub path_prefix: String,
    /// Seconds of silence before a server ping (announced to clients).
    pub activity_timeout: u64,
    /// Seconds to wait for life after a server ping before closing with 4201.
    pub pong_timeout: u64,
    /// Largest inbound WebSocket message, in bytes (close 1009 above it).
    pub max_message_size: usize,
    /// Outbound frames queued per connection before it is closed as a slow consumer (4100).
    pub outbound_queue_size: usize,
    /// Broadcasters write a frame straight to an idle plain-TCP socket instead of waking its
    /// connection task (`channels::direct`, spread over the cores by `channels::spread`; a busy
    /// channel is left to the tasks, `channels::pace`): about 15% less CPU per delivery on a
    /// large channel and no memory of its own per connection. On by default since it measured
    /// no worse than off across the battery (docs/performance.md); `false` is the old path.
    pub direct_writes: bool,
    /// Largest HTTP API request body, in bytes (413 above it).
    pub max_http_body_size: usize,
    /// Bytes every recorded channel's memory history may hold together on this node (0: no
    /// limit); over it, the least recently published channels are forgotten.
    pub max_history_memory: usize,
    /// Seconds a new TCP connection may take to finish its TLS handshake and to send a complete
    /// HTTP request head (also between keep-alive requests); slower ones are closed.
    pub handshake_timeout: u64,
    /// Length of the kernel's queue of connections not yet accepted (capped by
    /// `net.core.somaxconn`). When a burst of clients (a reconnect storm after a restart)
    /// overflows it, the kernel drops their SYNs and they retry only after a second.
    pub listen_backlog: u32,
    /// New WebSocket connections per second from one client address (0 = no limit); over it
    /// the connection is closed with 4100 and pusher-js retries after a second.
    pub new_connections_per_ip_per_second: u32,
    /// Proxies (addresses or CIDR networks) whose `X-Forwarded-For` names the client; from
    /// anyone else the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// `text` or `json`.
    pub log_format: String,
    /// `local` (one node) or `redis` (a cluster of nodes sharing one Redis).
    pub adapter: String,
    /// Redis connection URL for the `redis` adapter.
    pub redis_url: String,
    /// Prefix of every Redis key and pub/sub channel, so several clusters can share one Redis.
    pub redis_prefix: String,
    /// `single` (the server at `redis_url`), `sentinel` (the master `redis_sentinels` name) or
    /// `cluster` (a Redis Cluster found from `redis_cluster_nodes`).
    pub redis_mode: String,
    /// Sentinel URLs, for `redis_mode = "sentinel"`.
    pub redis_sentinels: Vec<String>,
    /// The master name the sentinels monitor.
    pub redis_sentinel_master: String,
    /// Seed URLs of a Redis Cluster, for `redis_mode = "cluster"`.
    pub redis_cluster_nodes: Vec<String>,
    /// PEM CA certificate(s) a `rediss://` server's certificate must chain to (`""` = the
    /// system's trust store).
    pub redis_tls_ca_file: String,
    /// PEM client certificate for mutual TLS with Redis (`""` = none).
    pub redis_tls_cert_file: String,
    /// PEM private key of `redis_tls_cert_file`.
    pub redis_tls_key_file: String,
    /// Accept any certificate from Redis (self-signed test setups only; logged at start).
    pub redis_tls_insecure: bool,
    /// Milliseconds `channel_vacated` and `member_removed` webhooks are held back (and dropped
    /// if the channel or member comes back meanwhile).
    pub webhook_delay_ms: u64,
    /// Milliseconds one webhook request may take.
    pub webhook_timeout_ms: u64,
    /// Seconds a failing webhook is retried (with exponential backoff) before it is dropped.
    pub webhook_retry_seconds: u64,
    /// Webhook events queued per app; beyond it the oldest are dropped (and counted).
    pub webhook_queue_size: usize,
    /// Webhook requests in flight per app.
    pub webhook_concurrency: usize,
    /// With `webhook_batching`: milliseconds events are gathered into one request.
    pub webhook_batch_ms: u64,
    /// PEM certificate chain for TLS on the main port (`""` = plain TCP).
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    pub tls_key: String,
    /// Port of the Prometheus `/metrics` endpoint (0 turns it off).
    pub metrics_port: u16,
    /// Prefix of every metric name (`soketi` makes Soketi's dashboards work).
    pub metrics_prefix: String,
    /// Seconds a shutdown (SIGTERM/SIGINT) waits for connections to close and webhooks to be
    /// sent before the process exits.
    pub shutdown_grace_seconds: u64,
    /// Where the apps live: `file` (the `[[apps]]` tables here), `postgres` or `mysql` (a
    /// table, read whole and polled; docs/app-store.md).
    pub app_store: String,
    /// The database for `postgres` / `mysql` (`postgres://…`, `mysql://…`).
    pub app_store_url: String,
    /// The table the apps are in (Soketi's layout).
    pub app_store_table: String,
    /// Seconds between two reads of the table.
    pub app_store_poll_seconds: u64,
    /// A Laravel app's `.env` to take one app (`REVERB_APP_*`, else `PUSHER_APP_*`) and the port
    /// (`REVERB_SERVER_PORT`) from, and nothing else (docs/laravel.md).
    pub env_file: String,
    /// Port of the admin API and dashboard (0 = off); never the public port.
    pub admin_port: u16,
    /// Bearer token the admin API requires (at least 16 characters when `admin_port` is set).
    pub admin_token: String,
    /// The apps; when empty (and `app_store = "file"`), the development app is used.
    pub apps: Vec<App>,
    /// Set when the development app was added because nothing was configured.
    #[serde(skip)]
    pub using_development_app: bool,
    /// The `SOKETI_*` variables taken and those not supported, for the start-up log.
    #[serde(skip)]
    pub soketi: soketi_env::Report,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "0.0.0.0".into(),
            port: 6001,
            path_prefix: String::new(),
            activity_timeout: 120,
            pong_timeout: 30,
            max_message_size: 100 * 1024,
            outbound_queue_size: 1000,
            direct_writes: true,
            max_http_body_size: 256 * 1024,
            max_history_memory: 64 * 1024 * 1024,
            handshake_timeout: 10,
            listen_backlog: 4096,
            new_connections_per_ip_per_second: 0,
            trusted_proxies: Vec::new(),
            log_format: "text".into(),
            adapter: "local".into(),
            redis_url: "redis://127.0.0.1:6379/0".into(),
            redis_prefix: "clarion".into(),
            redis_mode: "single".into(),
            redis_sentinels: Vec::new(),
            redis_sentinel_master: String::new(),
            redis_cluster_nodes: Vec::new(),
            redis_tls_ca_file: String::new(),
            redis_tls_cert_file: String::new(),
            redis_tls_key_file: String::new(),
            redis_tls_insecure: false,
            webhook_delay_ms: 3000,
            webhook_timeout_ms: 5000,
            webhook_retry_seconds: 300,
            webhook_queue_size: 10_000,
            webhook_concurrency: 16,
            webhook_batch_ms: 100,
            shutdown_grace_seconds: 10,
            tls_cert: String::new(),
            tls_key: String::new(),
            metrics_port: 9601,
            metrics_prefix: "clarion".into(),
            app_store: "file".into(),
            app_store_url: String::new(),
            app_store_table: "apps".into(),
            app_store_poll_seconds: 10,
            env_file: String::new(),
            admin_port: 0,
            admin_token: String::new(),
            apps: Vec::new(),
            using_development_app: false,
            soketi: soketi_env::Report::default(),
        }
    }
}

impl Config {
    /// Parses a TOML document (without validating it).
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Reads a config file.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("config file {}: {e}", path.display()))
    }

    /// Builds the effective configuration from flags/env (already merged by clap) over the file
    /// over the defaults, then validates it.
    pub fn load(cli: &Cli) -> Result<Validated, String> {
        let mut cfg = match &cli.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let env_file = cli.env_file.clone().unwrap_or_else(|| cfg.env_file.clone());
        if !env_file.is_empty() {
            cfg.apply_env_file(Path::new(&env_file))?;
        }
        cfg.soketi = soketi_env::apply(&mut cfg, &|name| std::env::var(name).ok())?;
        cfg.apply_overrides(cli)?;
        cfg.validate()
    }

    /// Takes the app and the port from a Laravel `.env` (before flags and `CLARION_*`, which
    /// still win). Client events are allowed, as Reverb allows Echo's whispers by default.
    fn apply_env_file(&mut self, path: &Path) -> Result<(), String> {
        let env = DotEnv::read(path).map_err(|e| format!("env_file: {e}"))?;
        let found = env
            .credentials()
            .map_err(|e| format!("env_file: {}: {e}", path.display()))?;
        let Some(c) = found else {
            return Err(format!(
                "env_file: {} has neither REVERB_APP_ID/KEY/SECRET nor PUSHER_APP_ID/KEY/SECRET",
                path.display()
            ));
        };
        if let Some(other) = self.apps.iter().find(|a| a.id == c.id || a.key == c.key) {
            return Err(format!(
                "env_file: the app of {} ({}_APP_ID {:?}) has the id or key of an [[apps]] entry ({:?})",
                path.display(),
                c.prefix,
                c.id,
                other.id
            ));
        }
        if let Some(port) = env
            .server_port()
            .map_err(|e| format!("env_file: {}: {e}", path.display()))?
        {
            self.port = port;
        }
        self.apps.push(App {
            id: c.id,
            key: c.key,
            secret: c.secret,
            enable_client_messages: true,
            ..App::default()
        });
        Ok(())
    }

    fn apply_overrides(&mut self, cli: &Cli) -> Result<(), String> {
        fn set<T: Clone>(slot: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *slot = v.clone();
            }
        }
        set(&mut self.host, &cli.host);
        set(&mut self.port, &cli.port);
        set(&mut self.path_prefix, &cli.path_prefix);
        set(&mut self.activity_timeout, &cli.activity_timeout);
        set(&mut self.pong_timeout, &cli.pong_timeout);
        set(&mut self.max_message_size, &cli.max_message_size);
        set(&mut self.outbound_queue_size, &cli.outbound_queue_size);
        set(&mut self.direct_writes, &cli.direct_writes);
        set(&mut self.max_http_body_size, &cli.max_http_body_size);
        set(&mut self.max_history_memory, &cli.max_history_memory);
        set(&mut self.handshake_timeout, &cli.handshake_timeout);
        set(&mut self.listen_backlog, &cli.listen_backlog);
        set(
            &mut self.new_connections_per_ip_per_second,
            &cli.new_connections_per_ip_per_second,
        );
        set(&mut self.trusted_proxies, &cli.trusted_proxies);
        set(&mut self.log_format, &cli.log_format);
        set(&mut self.adapter, &cli.adapter);
        set(&mut self.redis_url, &cli.redis_url);
        set(&mut self.redis_prefix, &cli.redis_prefix);
        set(&mut self.redis_mode, &cli.redis_mode);
        set(&mut self.redis_sentinels, &cli.redis_sentinels);
        set(&mut self.redis_sentinel_master, &cli.redis_sentinel_master);
        set(&mut self.redis_cluster_nodes, &cli.redis_cluster_nodes);
        set(&mut self.redis_tls_ca_file, &cli.redis_tls_ca_file);
        set(&mut self.redis_tls_cert_file, &cli.redis_tls_cert_file);
        set(&mut self.redis_tls_key_file, &cli.redis_tls_key_file);
        set(&mut self.redis_tls_insecure, &cli.redis_tls_insecure);
        set(&mut self.metrics_port, &cli.metrics_port);
        set(&mut self.tls_cert, &cli.tls_cert);
        set(&mut self.tls_key, &cli.tls_key);
        set(&mut self.metrics_prefix, &cli.metrics_prefix);
        set(&mut self.app_store, &cli.app_store);
        set(&mut self.app_store_url, &cli.app_store_url);
        set(&mut self.app_store_table, &cli.app_store_table);
        set(
            &mut self.app_store_poll_seconds,
            &cli.app_store_poll_seconds,
        );
        set(&mut self.admin_port, &cli.admin_port);
        set(&mut self.admin_token, &cli.admin_token);
        match (&cli.app_id, &cli.app_key, &cli.app_secret) {
            (None, None, None) => {
                if cli.app_enable_client_messages.is_some() || cli.app_enable_user_authentication.is_some() {
                    return Err(
                        "CLARION_APP_ENABLE_* (or --app-enable-*) only apply to the app given by CLARION_APP_ID/KEY/SECRET (or --app-id/--app-key/--app-secret)"
                            .into(),
                    );
                }
            }
            (Some(id), Some(key), Some(secret)) => {
                let mut app = App {
                    id: id.clone(),
                    key: key.clone(),
                    secret: secret.clone(),
                    ..App::default()
                };
                set(&mut app.enable_client_messages, &cli.app_enable_client_messages);
                set(&mut app.enable_user_authentication, &cli.app_enable_user_authentication);
                self.apps.push(app);
            }
            _ => {
                return Err(
                    "CLARION_APP_ID, CLARION_APP_KEY and CLARION_APP_SECRET (or --app-id, --app-key, --app-secret) must be given together"
                        .into(),
                )
            }
        }
        Ok(())
    }

    /// Validates and normalises in place; adds the development app when no app is
    /// configured. What the server needs parsed comes from [`Config::validate`].
    pub fn finish(&mut self) -> Result<(), String> {
        self.check_fields()?;
        self.parse_parts().map(|_| ())
    }

    /// Validates, normalises and hands over the parsed parts (apps, TLS, trusted proxies), so
    /// a server is only ever built from what was checked.
    pub fn validate(mut self) -> Result<Validated, String> {
        self.check_fields()?;
        let (apps, tls, trusted_proxies, redis) = self.parse_parts()?;
        Ok(Validated {
            config: self,
            apps,
            tls,
            trusted_proxies,
            redis,
        })
    }

    /// The settings that are more than a value: each parsed once, here.
    fn parse_parts(&self) -> Result<Parts, String> {
        let proxies = TrustedProxies::parse(&self.trusted_proxies)?;
        let tls = if self.tls_cert.is_empty() {
            None
        } else {
            Some(Tls::load(&self.tls_cert, &self.tls_key)?)
        };
        let apps = AppRegistry::new(self.apps.clone())?;
        let redis = if self.adapter == "redis" {
            Some(redis_target::target(self)?)
        } else {
            None
        };
        Ok((apps, tls, proxies, redis))
    }

    fn check_fields(&mut self) -> Result<(), String> {
        if self.host.trim().is_empty() {
            return Err("host: must not be empty".into());
        }
        if !self.path_prefix.is_empty() {
            let p = self.path_prefix.trim_end_matches('/');
            if !p.starts_with('/') && !p.is_empty() {
                return Err(format!(
                    "path_prefix: {:?} must start with '/'",
                    self.path_prefix
                ));
            }
            self.path_prefix = p.to_string();
        }
        if self.activity_timeout == 0 {
            return Err("activity_timeout: must be at least 1 (pusher-js refuses 0)".into());
        }
        if self.pong_timeout == 0 {
            return Err("pong_timeout: must be at least 1".into());
        }
        if self.max_message_size < 1024 {
            return Err("max_message_size: must be at least 1024 bytes".into());
        }
        if self.outbound_queue_size == 0 {
            return Err("outbound_queue_size: must be at least 1".into());
        }
        if self.max_http_body_size < 1024 {
            return Err("max_http_body_size: must be at least 1024 bytes".into());
        }
        if self.handshake_timeout == 0 {
            return Err("handshake_timeout: must be at least 1".into());
        }
        if self.listen_backlog == 0 {
            return Err("listen_backlog: must be at least 1".into());
        }
        if self.log_format != "text" && self.log_format != "json" {
            return Err(format!(
                "log_format: {:?} is neither \"text\" nor \"json\"",
                self.log_format
            ));
        }
        if self.adapter != "local" && self.adapter != "redis" {
            return Err(format!(
                "adapter: {:?} is neither \"local\" nor \"redis\"",
                self.adapter
            ));
        }
        if self.adapter == "redis" {
            redis_target::check_fields(self)?;
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(char::is_whitespace) {
            return Err(format!(
                "redis_prefix: {:?} must be non-empty and without spaces",
                self.redis_prefix
            ));
        }
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            return Err("tls_cert and tls_key: give both (TLS on) or neither (plain TCP)".into());
        }
        let valid_metric = |p: &str| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !valid_metric(&self.metrics_prefix) {
            return Err(format!(
                "metrics_prefix: {:?} must be letters, digits and _ (not starting with a digit)",
                self.metrics_prefix
            ));
        }
        if self.webhook_timeout_ms == 0 {
            return Err("webhook_timeout_ms: must be at least 1".into());
        }
        if self.webhook_queue_size == 0 {
            return Err("webhook_queue_size: must be at least 1".into());
        }
        if self.webhook_concurrency == 0 {
            return Err("webhook_concurrency: must be at least 1".into());
        }
        match self.app_store.as_str() {
            "file" => {}
            "postgres" | "mysql" => {
                let scheme_ok = match self.app_store.as_str() {
                    "postgres" => {
                        self.app_store_url.starts_with("postgres://")
                            || self.app_store_url.starts_with("postgresql://")
                    }
                    _ => {
                        self.app_store_url.starts_with("mysql://")
                            || self.app_store_url.starts_with("mariadb://")
                    }
                };
                if !scheme_ok {
                    return Err(format!(
                        "app_store_url: {:?} is not a {} URL",
                        mask_url_password(&self.app_store_url),
                        self.app_store
                    ));
                }
                let ident = |t: &str| {
                    !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                };
                if !ident(&self.app_store_table) {
                    return Err(format!(
                        "app_store_table: {:?} must be letters, digits and _",
                        self.app_store_table
                    ));
                }
                if self.app_store_poll_seconds == 0 {
                    return Err("app_store_poll_seconds: must be at least 1".into());
                }
                if !self.apps.is_empty() {
                    return Err(format!(
                        "apps: [[apps]] tables and app_store = {:?} exclude each other; the apps come from the table",
                        self.app_store
                    ));
                }
            }
            other => {
                return Err(format!(
                    "app_store: {other:?} is neither \"file\", \"postgres\" nor \"mysql\""
                ))
            }
        }
        if self.admin_port != 0 {
            if self.admin_token.chars().count() < 16 {
                return Err("admin_token: the admin API (admin_port) needs a token of at least 16 characters".into());
            }
            if self.admin_port == self.port || self.admin_port == self.metrics_port {
                return Err(format!(
                    "admin_port: {} is already the port or the metrics_port",
                    self.admin_port
                ));
            }
        }
        if self.apps.is_empty() && self.app_store == "file" {
            self.apps.push(App::development());
            self.using_development_app = true;
        }
        Ok(())
    }

    /// The effective settings as TOML with every secret masked (app secrets, the Redis
    /// password), for `clarion check-config` and logs.
    pub fn masked_toml(&self) -> String {
        let mut shown = self.clone();
        for app in &mut shown.apps {
            app.secret = "********".into();
            for hook in &mut app.webhooks {
                hook.url = mask_url_password(&hook.url);
            }
        }
        shown.redis_url = mask_url_password(&shown.redis_url);
        shown.app_store_url = mask_url_password(&shown.app_store_url);
        if !shown.admin_token.is_empty() {
            shown.admin_token = "********".into();
        }
        for url in shown
            .redis_sentinels
            .iter_mut()
            .chain(shown.redis_cluster_nodes.iter_mut())
        {
            *url = mask_url_password(url);
        }
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot print the settings: {e}\n"))
    }

    /// The app registry for this configuration (validated by `finish`).
    pub fn registry(&self) -> Result<AppRegistry, String> {
        AppRegistry::new(self.apps.clone())
    }
}

/// A checked configuration with its parsed parts; the only input a server is built from.
pub struct Validated {
    pub config: Config,
    pub apps: AppRegistry,
    /// TLS for the main port, when configured (the pair was read and matched).
    pub tls: Option<Tls>,
    pub trusted_proxies: TrustedProxies,
    /// How to reach Redis, with the `redis` adapter (the URL parsed, TLS files loaded).
    pub redis: Option<RedisTarget>,
}

/// `redis://user:secret@host` → `redis://user:********@host` (also for webhook URLs).
pub fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The password may itself contain '@' (or, unencoded, '/'): everything up to the last '@'
    // is treated as user info, which can only hide too much, never too little.
    match rest.rsplit_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:********@{host}"),
            None => format!("{scheme}://********@{host}"),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests;
