//! What every connection and request shares: the configuration, the apps and the adapter.

use std::sync::{Arc, RwLock};

use crate::adapter::Adapter;
use crate::app::AppRegistry;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::webhooks::Webhooks;

pub struct State {
    pub config: Config,
    apps: RwLock<Arc<AppRegistry>>,
    pub adapter: Arc<dyn Adapter>,
    pub webhooks: Webhooks,
    pub metrics: Metrics,
    /// Per-app HTTP API rate limits.
    pub api_limits: crate::http::limits::ApiLimits,
    /// TLS for the main port, when configured.
    pub tls: Option<crate::tls::Tls>,
    /// TCP connections open on the main port (see `open_sockets`).
    pub open_sockets: Arc<std::sync::atomic::AtomicI64>,
    /// `new_connections_per_ip_per_second`.
    pub connection_rate: crate::ip_limit::ConnectionRateLimit,
    /// `trusted_proxies`, parsed.
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// Set when shutdown starts: `/ready` answers 503 and new WebSocket connections are refused.
    pub draining: std::sync::atomic::AtomicBool,
}

impl State {
    pub fn new(config: Config, apps: AppRegistry, adapter: Arc<dyn Adapter>) -> State {
        State {
            webhooks: Webhooks::new(&config),
            // The prefix is validated with the config, so building the metrics cannot fail.
            metrics: Metrics::new(&config.metrics_prefix)
                .unwrap_or_else(|e| unreachable!("metric names from a validated prefix: {e}")),
            draining: std::sync::atomic::AtomicBool::new(false),
            api_limits: Default::default(),
            open_sockets: Default::default(),
            connection_rate: crate::ip_limit::ConnectionRateLimit::new(
                config.new_connections_per_ip_per_second,
            ),
            // Validated with the config.
            trusted_proxies: crate::client_ip::TrustedProxies::parse(&config.trusted_proxies)
                .unwrap_or_default(),
            // Validated with the config, so the files were readable a moment ago.
            tls: (!config.tls_cert.is_empty())
                .then(|| crate::tls::Tls::load(&config.tls_cert, &config.tls_key).ok())
                .flatten(),
            config,
            apps: RwLock::new(Arc::new(apps)),
            adapter,
        }
    }

    /// A snapshot of the app registry. The lock is held only to clone the `Arc`, so a reload
    /// can swap the registry without stalling anyone.
    pub fn apps(&self) -> Arc<AppRegistry> {
        match self.apps.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Replaces the app registry (used by config reload).
    pub fn set_apps(&self, apps: AppRegistry) {
        let mut g = match self.apps.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Arc::new(apps);
    }
}
