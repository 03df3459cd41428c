//! Webhooks: tell the application what happens on its channels (Pusher's documented format,
//! signed with `X-Pusher-Key` / `X-Pusher-Signature`).

mod dispatcher;
pub mod event;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use crate::app::App;
use crate::config::Config;
use dispatcher::AppHooks;
pub use dispatcher::Settings;
pub use event::Event;

/// Every app's webhook queue, created on the first event of an app that has targets.
pub struct Webhooks {
    settings: Settings,
    apps: DashMap<String, Arc<AppHooks>>,
}

impl Webhooks {
    pub fn new(config: &Config) -> Webhooks {
        Webhooks {
            settings: Settings {
                delay: Duration::from_millis(config.webhook_delay_ms),
                timeout: Duration::from_millis(config.webhook_timeout_ms),
                retry_for: Duration::from_secs(config.webhook_retry_seconds),
                queue_size: config.webhook_queue_size,
                concurrency: config.webhook_concurrency,
                batch_window: Duration::from_millis(config.webhook_batch_ms),
            },
            apps: DashMap::new(),
        }
    }

    /// Queues an event for the app's targets; free when the app has none.
    pub fn emit(&self, app: &Arc<App>, event: Event) {
        if app.webhooks.is_empty() {
            return;
        }
        let hooks = match self.apps.get(&app.id) {
            Some(h) => h.clone(),
            None => self
                .apps
                .entry(app.id.clone())
                .or_insert_with(|| AppHooks::start(app.clone(), self.settings.clone()))
                .clone(),
        };
        hooks.update_app(app);
        hooks.emit(event);
    }

    /// Events queued or being sent, over all apps.
    pub fn pending(&self) -> usize {
        self.apps.iter().map(|h| h.pending()).sum()
    }

    /// Sends held-back events now (shutdown).
    pub fn flush_now(&self) {
        for h in self.apps.iter() {
            h.flush_now();
        }
    }

    /// Requests that succeeded, requests given up on, events dropped; over all apps.
    pub fn stats(&self) -> WebhookStats {
        use std::sync::atomic::Ordering::Relaxed;
        self.apps
            .iter()
            .fold(WebhookStats::default(), |t, h| WebhookStats {
                sent: t.sent + h.sent.load(Relaxed),
                failed: t.failed + h.failed.load(Relaxed),
                dropped: t.dropped + h.dropped.load(Relaxed),
            })
    }
}

/// The dispatcher's totals since start, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Requests answered with 2xx.
    pub sent: u64,
    /// Requests given up on after retrying.
    pub failed: u64,
    /// Events dropped because an app's queue was full.
    pub dropped: u64,
}
