//! Command-line flags. Each server setting is also read from a `CLARION_*` environment
//! variable; clap gives a flag precedence over its variable, and `config.rs` puts both above the
//! file and the file above the defaults.

pub mod client;
pub mod dotenv;
pub mod laravel;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Clarion: a self-hosted real-time server for the Pusher Channels protocol
/// (Laravel broadcasting, Laravel Echo, pusher-js).
#[derive(Parser, Debug, Default, Clone)]
#[command(name = "clarion", version)]
pub struct Cli {
    /// Without a command, Clarion serves.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML configuration file (see config.example.toml).
    #[arg(short, long, env = "CLARION_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 0.0.0.0].
    #[arg(long, env = "CLARION_HOST")]
    pub host: Option<String>,

    /// Port for WebSocket and HTTP API [default: 6001].
    #[arg(short, long, env = "CLARION_PORT")]
    pub port: Option<u16>,

    /// Path prefix the server is mounted under, e.g. `/ws` (stripped before routing and before
    /// signature checks) [default: none].
    #[arg(long, env = "CLARION_PATH_PREFIX")]
    pub path_prefix: Option<String>,

    /// Seconds of silence before the server pings a client; announced in
    /// connection_established [default: 120].
    #[arg(long, env = "CLARION_ACTIVITY_TIMEOUT")]
    pub activity_timeout: Option<u64>,

    /// Seconds to wait for any frame after a server ping before closing with 4201 [default: 30].
    #[arg(long, env = "CLARION_PONG_TIMEOUT")]
    pub pong_timeout: Option<u64>,

    /// Largest inbound WebSocket message in bytes; larger ones close the connection with 1009
    /// [default: 102400].
    #[arg(long, env = "CLARION_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<usize>,

    /// Frames queued for one connection before it counts as a slow consumer and is closed with
    /// 4100 [default: 1000].
    #[arg(long, env = "CLARION_OUTBOUND_QUEUE_SIZE")]
    pub outbound_queue_size: Option<usize>,

    /// Write broadcasts straight to idle plain-TCP sockets: less CPU on large channels, higher
    /// fan-out p99 [default: false].
    #[arg(long, env = "CLARION_DIRECT_WRITES", value_name = "BOOL")]
    pub direct_writes: Option<bool>,

    /// Largest HTTP API request body in bytes; larger ones get 413 [default: 262144].
    #[arg(long, env = "CLARION_MAX_HTTP_BODY_SIZE")]
    pub max_http_body_size: Option<usize>,

    /// Bytes all memory history (missed-message recovery with adapter = "local") may hold;
    /// over it the least recently published channels are forgotten; 0 = no limit
    /// [default: 67108864].
    #[arg(long, env = "CLARION_MAX_HISTORY_MEMORY")]
    pub max_history_memory: Option<usize>,

    /// Seconds a new connection may take for its TLS handshake and its HTTP request head
    /// [default: 10].
    #[arg(long, env = "CLARION_HANDSHAKE_TIMEOUT")]
    pub handshake_timeout: Option<u64>,

    /// Connections the kernel queues before the server accepts them (capped by
    /// net.core.somaxconn) [default: 4096].
    #[arg(long, env = "CLARION_LISTEN_BACKLOG")]
    pub listen_backlog: Option<u32>,

    /// New WebSocket connections per second allowed from one client address; 0 = no limit
    /// [default: 0].
    #[arg(long, env = "CLARION_NEW_CONNECTIONS_PER_IP_PER_SECOND")]
    pub new_connections_per_ip_per_second: Option<u32>,

    /// Comma-separated proxy addresses or CIDR networks whose X-Forwarded-For header is
    /// believed [default: none].
    #[arg(long, env = "CLARION_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,

    /// Log format: `text` or `json` [default: text]. Levels come from RUST_LOG.
    #[arg(long, env = "CLARION_LOG_FORMAT")]
    pub log_format: Option<String>,

    /// Where subscribers live: `local` (one node) or `redis` (nodes sharing one Redis)
    /// [default: local].
    #[arg(long, env = "CLARION_ADAPTER")]
    pub adapter: Option<String>,

    /// Redis URL for the `redis` adapter [default: redis://127.0.0.1:6379/0].
    #[arg(long, env = "CLARION_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of Redis keys and channels, so several clusters can share one Redis
    /// [default: clarion].
    #[arg(long, env = "CLARION_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,

    /// Where the apps live: file, postgres or mysql [default: file].
    #[arg(long, env = "CLARION_APP_STORE")]
    pub app_store: Option<String>,

    /// The app store's database URL (postgres://… or mysql://…).
    #[arg(long, env = "CLARION_APP_STORE_URL", hide_env_values = true)]
    pub app_store_url: Option<String>,

    /// The table the apps are in [default: apps].
    #[arg(long, env = "CLARION_APP_STORE_TABLE")]
    pub app_store_table: Option<String>,

    /// Seconds between two reads of the app table [default: 10].
    #[arg(long, env = "CLARION_APP_STORE_POLL_SECONDS")]
    pub app_store_poll_seconds: Option<u64>,

    /// A Laravel app's .env: take the app (REVERB_APP_*, else PUSHER_APP_*) and the port
    /// (REVERB_SERVER_PORT) from it, nothing else.
    #[arg(long, env = "CLARION_ENV_FILE", value_name = "PATH")]
    pub env_file: Option<String>,

    /// Port of the admin API and dashboard [default: 0 = off].
    #[arg(long, env = "CLARION_ADMIN_PORT")]
    pub admin_port: Option<u16>,

    /// Bearer token of the admin API (at least 16 characters).
    #[arg(long, env = "CLARION_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// How to find Redis: `single` (redis_url), `sentinel` (the master that the sentinels
    /// name) or `cluster` (a Redis Cluster, from redis_cluster_nodes) [default: single].
    #[arg(long, env = "CLARION_REDIS_MODE")]
    pub redis_mode: Option<String>,

    /// Comma-separated Sentinel URLs (redis:// or rediss://) for redis_mode = sentinel.
    #[arg(
        long,
        env = "CLARION_REDIS_SENTINELS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub redis_sentinels: Option<Vec<String>>,

    /// Comma-separated seed URLs (redis:// or rediss://) of a Redis Cluster, for
    /// redis_mode = cluster.
    #[arg(
        long,
        env = "CLARION_REDIS_CLUSTER_NODES",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub redis_cluster_nodes: Option<Vec<String>>,

    /// The master name the sentinels monitor, for redis_mode = sentinel.
    #[arg(long, env = "CLARION_REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,

    /// PEM CA certificate(s) for a rediss:// Redis [default: the system's trust store].
    #[arg(long, env = "CLARION_REDIS_TLS_CA_FILE", value_name = "FILE")]
    pub redis_tls_ca_file: Option<String>,

    /// PEM client certificate for mutual TLS with Redis [default: none].
    #[arg(long, env = "CLARION_REDIS_TLS_CERT_FILE", value_name = "FILE")]
    pub redis_tls_cert_file: Option<String>,

    /// PEM private key of --redis-tls-cert-file.
    #[arg(long, env = "CLARION_REDIS_TLS_KEY_FILE", value_name = "FILE")]
    pub redis_tls_key_file: Option<String>,

    /// Accept any certificate from Redis: self-signed test setups only [default: false].
    #[arg(long, env = "CLARION_REDIS_TLS_INSECURE", value_name = "BOOL")]
    pub redis_tls_insecure: Option<bool>,

    /// PEM certificate chain: serve TLS (wss://, https://) on the main port [default: none].
    #[arg(long, env = "CLARION_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<String>,

    /// PEM private key for --tls-cert [default: none].
    #[arg(long, env = "CLARION_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<String>,

    /// Port of the Prometheus /metrics endpoint; 0 turns it off [default: 9601].
    #[arg(long, env = "CLARION_METRICS_PORT")]
    pub metrics_port: Option<u16>,

    /// Prefix of metric names (e.g. `soketi` for Soketi's dashboards) [default: clarion].
    #[arg(long, env = "CLARION_METRICS_PREFIX")]
    pub metrics_prefix: Option<String>,

    /// Id of one app defined from the command line or environment (needs key and secret too).
    #[arg(long, env = "CLARION_APP_ID")]
    pub app_id: Option<String>,

    /// Key of the app given by --app-id.
    #[arg(long, env = "CLARION_APP_KEY")]
    pub app_key: Option<String>,

    /// Secret of the app given by --app-id.
    #[arg(long, env = "CLARION_APP_SECRET", hide_env_values = true)]
    pub app_secret: Option<String>,

    /// Allow client events (whispers) for the app given by --app-id [default: false].
    #[arg(long, env = "CLARION_APP_ENABLE_CLIENT_MESSAGES")]
    pub app_enable_client_messages: Option<bool>,

    /// Require user sign-in for the app given by --app-id [default: false].
    #[arg(long, env = "CLARION_APP_ENABLE_USER_AUTHENTICATION")]
    pub app_enable_user_authentication: Option<bool>,
}

/// Commands besides serving.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Validate a config file (with the environment and flags applied, as serving would) and
    /// print the effective settings, secrets masked. Exit code 0 when valid, 2 when not.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Trigger an event (or a batch) through the HTTP API, signed with the app secret.
    Trigger(client::Trigger),
    /// List occupied channels.
    Channels(client::Channels),
    /// Show one channel (occupied, counts, cache).
    Channel(client::OneChannel),
    /// List the users of a presence channel.
    Users(client::OneChannel),
    /// Show a recorded channel's history (missed-message recovery), or purge it.
    History(client::History),
    /// GET a URL (default http://127.0.0.1:6001/ready) and exit 0 on a 2xx answer, 1 otherwise:
    /// a health check for images with no shell or curl.
    Probe {
        /// The URL to check.
        #[arg(default_value = "http://127.0.0.1:6001/ready")]
        url: String,
    },
    /// Print the .env lines and config/broadcasting.php connection a Laravel app needs to
    /// broadcast through Clarion (or write them into its .env).
    Laravel(laravel::Laravel),
}
