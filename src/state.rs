//! What every connection and request shares: the configuration, the apps and the adapter.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use crate::adapter::{Adapter, HistoryUnavailable};
use crate::app::{App, AppRegistry, OnHistoryError, Recording};
use crate::config::{Config, Validated};
use crate::limits::api::ApiLimits;
use crate::limits::per_ip::ConnectionRateLimit;
use crate::metrics::{Metrics, Snapshot};
use crate::net::client_ip::TrustedProxies;
use crate::net::tls::Tls;
use crate::protocol::codes::Fatal;
use crate::protocol::frames::Frame;
use crate::protocol::socket_id::SocketId;
use crate::webhooks::Webhooks;

pub struct State {
    pub config: Config,
    apps: RwLock<Arc<AppRegistry>>,
    pub adapter: Arc<dyn Adapter>,
    pub webhooks: Webhooks,
    pub metrics: Metrics,
    /// Per-app HTTP API rate limits.
    pub api_limits: ApiLimits,
    /// TLS for the main port, when configured.
    pub tls: Option<Tls>,
    /// TCP connections open on the main port (see `net::open_sockets`).
    pub open_sockets: Arc<AtomicI64>,
    /// `new_connections_per_ip_per_second`.
    pub connection_rate: ConnectionRateLimit,
    /// `trusted_proxies`, parsed.
    pub trusted_proxies: TrustedProxies,
    /// Set when shutdown starts: `/ready` answers 503 and new WebSocket connections are refused.
    pub draining: AtomicBool,
    /// Whether the apps were read at least once: always with `app_store = "file"`; with a
    /// database, `/ready` answers 503 until its table has been read.
    pub apps_loaded: AtomicBool,
    /// The app store, when the apps live in a database (the admin API writes through it).
    pub app_store: Option<Arc<crate::app_store::AppStore>>,
    /// Wakes the app store's poller at once (after an admin API write).
    pub app_store_kick: Arc<tokio::sync::Notify>,
}

impl State {
    /// Builds the shared state from a checked configuration: nothing here can fail or fall
    /// back, so what runs is what was validated.
    pub fn new(checked: Validated, metrics: Metrics, adapter: Arc<dyn Adapter>) -> State {
        let Validated {
            config,
            apps,
            tls,
            trusted_proxies,
            redis: _,
        } = checked;
        State {
            webhooks: Webhooks::new(&config),
            metrics,
            draining: AtomicBool::new(false),
            apps_loaded: AtomicBool::new(config.app_store == "file"),
            app_store: None,
            app_store_kick: Arc::default(),
            api_limits: ApiLimits::default(),
            open_sockets: Arc::default(),
            connection_rate: ConnectionRateLimit::new(config.new_connections_per_ip_per_second),
            trusted_proxies,
            tls,
            config,
            apps: RwLock::new(Arc::new(apps)),
            adapter,
        }
    }

    /// A snapshot of the app registry. The lock is held only to clone the `Arc`, so a reload
    /// can swap the registry without stalling anyone.
    pub fn apps(&self) -> Arc<AppRegistry> {
        crate::sync::read(&self.apps).clone()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Replaces the app registry (used by config reload).
    pub fn set_apps(&self, apps: AppRegistry) {
        *crate::sync::write(&self.apps) = Arc::new(apps);
    }

    /// Applies a new app list (SIGHUP, the app store, the admin API): connections of unchanged
    /// apps stay; those of apps that were removed, disabled or re-keyed are closed with the
    /// code a new connection would get.
    pub fn apply_apps(&self, apps: AppRegistry) {
        let old = self.apps();
        self.set_apps(apps);
        let new = self.apps();
        for app in old.iter() {
            let refusal = match new.by_id(&app.id) {
                None => Fatal::AppNotFound,
                Some(n) if !n.enabled => Fatal::AppDisabled,
                Some(n) if n.key != app.key => Fatal::AppKeyChanged,
                Some(_) => continue,
            };
            self.adapter.local().close_app(&app.id, refusal);
        }
        tracing::info!(apps = new.len(), "apps updated");
    }

    /// Publishes on a recorded channel through its history and counts the append (or the
    /// failure): one place for the HTTP API and client events. When history cannot be written,
    /// `on_error` decides: `Reject` delivers nothing and gives the error back (HTTP 503);
    /// `Deliver` delivers the frame unstamped and tells the adapter that the channel's history
    /// now misses an event (so that it starts a new epoch, docs/recovery.md).
    pub async fn publish_recorded(
        &self,
        app: &App,
        channel: &str,
        frame: Frame,
        except: Option<SocketId>,
        rec: &Recording,
        on_error: OnHistoryError,
    ) -> Result<(), HistoryUnavailable> {
        let recorded = self
            .adapter
            .publish_recorded(app, channel, frame.clone(), except, rec)
            .await;
        let counter = match recorded {
            Ok(_) => &self.metrics.history_appends,
            Err(_) => &self.metrics.history_append_errors,
        };
        counter.with_label_values(&[&app.id]).inc();
        match (recorded, on_error) {
            (Ok(_), _) => Ok(()),
            (Err(e), OnHistoryError::Reject) => Err(e),
            (Err(_), OnHistoryError::Deliver) => {
                self.adapter.delivered_unrecorded(app, channel).await;
                self.adapter.broadcast(app, channel, frame, except).await;
                Ok(())
            }
        }
    }

    /// The live figures the metrics report, read now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            apps: self.adapter.local().stats(),
            open_sockets: self.open_sockets.load(Ordering::Relaxed),
            queued_frames: self.adapter.local().queued_frames(),
            // Tokio counts its live tasks anyway (stable `RuntimeMetrics`); outside a runtime
            // (never the case for a scrape) there are none to count.
            runtime_tasks: tokio::runtime::Handle::try_current()
                .map(|h| h.metrics().num_alive_tasks() as u64)
                .unwrap_or(0),
            webhooks: self.webhooks.stats(),
            bus: self
                .adapter
                .cluster()
                .map(|c| c.stats())
                .unwrap_or_default(),
        }
    }
}
