//! Prometheus metrics, served on their own port (`metrics_port`, default 9601; 0 turns them
//! off). Names follow Soketi's where one exists, under a configurable prefix (`clarion` by
//! default; `soketi` makes existing Soketi dashboards work).
//!
//! Gauges (connections, channels, presence members) are computed from the live state at every
//! scrape rather than incremented and decremented along the way, so they cannot drift: when
//! the load goes away they read zero.

use crate::adapter::{BusStats, LocalStats};
use crate::webhooks::WebhookStats;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// What the metrics read from the live state at each scrape: plain figures, so that rendering
/// needs nothing else (and can be tested with made-up ones).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Per-app figures of this node.
    pub apps: Vec<LocalStats>,
    /// TCP connections open on the main port.
    pub open_sockets: i64,
    /// The webhook dispatcher's totals since start.
    pub webhooks: WebhookStats,
    /// The cluster bus's totals since start (zeros on one node).
    pub bus: BusStats,
    /// Frames waiting in all connections' outbound queues, summed at scrape time.
    pub queued_frames: u64,
    /// Tasks alive in the server's tokio runtime (one per connection, plus the fixed ones).
    pub runtime_tasks: u64,
}

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    pub connected: IntGaugeVec,
    pub open_sockets: IntGauge,
    pub new_connections: IntCounterVec,
    pub new_disconnections: IntCounterVec,
    pub ws_received_bytes: IntCounterVec,
    pub ws_sent_bytes: IntCounterVec,
    pub ws_messages_received: IntCounterVec,
    pub ws_messages_sent: IntCounterVec,
    pub http_calls: IntCounterVec,
    pub http_received_bytes: IntCounterVec,
    pub http_sent_bytes: IntCounterVec,
    pub channels: IntGaugeVec,
    pub presence_members: IntGaugeVec,
    pub client_events: IntCounterVec,
    /// Recoveries asked for with a position, by `result` (`recovered` or the failure reason).
    pub recoveries: IntCounterVec,
    pub recovery_replayed: IntCounterVec,
    pub history_appends: IntCounterVec,
    pub history_append_errors: IntCounterVec,
    pub history_bytes: IntGaugeVec,
    pub slow_consumer_disconnects: IntCounter,
    pub rate_limit_rejections: IntCounterVec,
    pub webhooks_sent: IntCounter,
    pub webhooks_failed: IntCounter,
    pub webhooks_dropped: IntCounter,
    pub redis_published: IntCounter,
    pub redis_received: IntCounter,
    pub redis_errors: IntCounter,
    /// Channels whose bus subscription this node holds (interest-based fan-out).
    pub redis_subscriptions: IntGauge,
    pub broadcast_seconds: Histogram,
    /// 1 while the app store's database cannot be read (the last good apps are served).
    pub app_store_unreachable: IntGauge,
    /// Frames waiting in outbound queues: a leak of queued frames, or many clients near 4100,
    /// shows here before it shows in RSS.
    pub queued_frames: IntGauge,
    /// Tokio tasks alive: a task that outlives its connection shows as a climb under steady
    /// load.
    pub runtime_tasks: IntGauge,
}

fn app_label() -> &'static [&'static str] {
    &["app_id"]
}

impl Metrics {
    pub fn new(prefix: &str) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let name = |n: &str| format!("{prefix}_{n}");
        let gauge = |n: &str, help: &str| -> Result<IntGaugeVec, prometheus::Error> {
            let g = IntGaugeVec::new(Opts::new(name(n), help), app_label())?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter_vec = |n: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name(n), help), app_label())?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter = |n: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name(n), help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let broadcast_seconds = Histogram::with_opts(
            HistogramOpts::new(
                name("broadcast_fanout_seconds"),
                "Time to queue one broadcast for every local subscriber of its channel",
            )
            .buckets(vec![
                1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5,
            ]),
        )?;
        registry.register(Box::new(broadcast_seconds.clone()))?;
        let recoveries = IntCounterVec::new(
            Opts::new(
                name("recoveries_total"),
                "Resubscribes that asked for missed events, by result (recovered or why not)",
            ),
            &["app_id", "result"],
        )?;
        registry.register(Box::new(recoveries.clone()))?;
        let open_sockets = IntGauge::new(
            name("open_sockets"),
            "TCP connections open on the main port (HTTP, handshaking and WebSocket)",
        )?;
        registry.register(Box::new(open_sockets.clone()))?;
        let app_store_unreachable = IntGauge::new(
            name("app_store_unreachable"),
            "1 while the app store's database cannot be read; the last apps read are served",
        )?;
        registry.register(Box::new(app_store_unreachable.clone()))?;
        let redis_subscriptions = IntGauge::new(
            name("redis_bus_subscriptions"),
            "Channels whose cluster bus subscription this node holds (interest-based fan-out)",
        )?;
        registry.register(Box::new(redis_subscriptions.clone()))?;
        let queued_frames = IntGauge::new(
            name("queued_frames"),
            "Frames waiting in all connections' outbound queues (counted at scrape time)",
        )?;
        registry.register(Box::new(queued_frames.clone()))?;
        let runtime_tasks = IntGauge::new(
            name("runtime_tasks"),
            "Tasks alive in the server's tokio runtime",
        )?;
        registry.register(Box::new(runtime_tasks.clone()))?;
        Ok(Metrics {
            queued_frames,
            runtime_tasks,
            app_store_unreachable,
            connected: gauge("connected", "Open WebSocket connections")?,
            open_sockets,
            new_connections: counter_vec("new_connections_total", "WebSocket connections opened")?,
            new_disconnections: counter_vec(
                "new_disconnections_total",
                "WebSocket connections closed",
            )?,
            ws_received_bytes: counter_vec(
                "socket_received_bytes",
                "Bytes received over WebSocket",
            )?,
            ws_sent_bytes: counter_vec("socket_transmitted_bytes", "Bytes sent over WebSocket")?,
            ws_messages_received: counter_vec(
                "ws_messages_received_total",
                "WebSocket messages received",
            )?,
            ws_messages_sent: counter_vec("ws_messages_sent_total", "WebSocket messages sent")?,
            http_calls: counter_vec("http_calls_received_total", "HTTP API calls received")?,
            http_received_bytes: counter_vec(
                "http_received_bytes",
                "Bytes received by the HTTP API",
            )?,
            http_sent_bytes: counter_vec("http_transmitted_bytes", "Bytes sent by the HTTP API")?,
            channels: gauge(
                "channels",
                "Channels with at least one subscriber on this node",
            )?,
            presence_members: gauge("presence_members", "Presence members on this node")?,
            client_events: counter_vec("client_events_total", "Client events accepted")?,
            recoveries,
            recovery_replayed: counter_vec(
                "recovery_replayed_events_total",
                "Missed events replayed to resubscribing connections",
            )?,
            history_appends: counter_vec(
                "history_appends_total",
                "Events recorded in a channel's history",
            )?,
            history_append_errors: counter_vec(
                "history_append_errors_total",
                "Events on recorded channels whose history could not be written",
            )?,
            history_bytes: gauge(
                "history_bytes",
                "Bytes of recorded events held in this node's memory history",
            )?,
            slow_consumer_disconnects: counter(
                "slow_consumer_disconnects_total",
                "Connections closed with 4100 because they did not read their messages",
            )?,
            rate_limit_rejections: counter_vec(
                "rate_limit_rejections_total",
                "Requests or events refused by a rate limit",
            )?,
            webhooks_sent: counter("webhooks_sent_total", "Webhook requests answered with 2xx")?,
            webhooks_failed: counter("webhooks_failed_total", "Webhook requests given up on")?,
            webhooks_dropped: counter(
                "webhooks_dropped_total",
                "Webhook events dropped because a queue was full",
            )?,
            redis_published: counter(
                "redis_published_total",
                "Messages published to the cluster bus",
            )?,
            redis_received: counter(
                "redis_received_total",
                "Messages received from the cluster bus (the node's own included)",
            )?,
            redis_errors: counter("redis_errors_total", "Failed Redis calls")?,
            redis_subscriptions,
            broadcast_seconds,
            registry,
        })
    }

    /// The text exposition, with the gauges and the externally kept counters refreshed first
    /// from `now`.
    pub fn render(&self, now: &Snapshot) -> String {
        self.connected.reset();
        self.channels.reset();
        self.presence_members.reset();
        self.history_bytes.reset();
        for s in &now.apps {
            if s.history_bytes > 0 {
                self.history_bytes
                    .with_label_values(&[&s.app_id])
                    .set(s.history_bytes as i64);
            }
            self.connected
                .with_label_values(&[&s.app_id])
                .set(s.connections as i64);
            self.channels
                .with_label_values(&[&s.app_id])
                .set(s.channels as i64);
            self.presence_members
                .with_label_values(&[&s.app_id])
                .set(s.members as i64);
        }
        self.open_sockets.set(now.open_sockets);
        catch_up(&self.webhooks_sent, now.webhooks.sent);
        catch_up(&self.webhooks_failed, now.webhooks.failed);
        catch_up(&self.webhooks_dropped, now.webhooks.dropped);
        catch_up(&self.redis_published, now.bus.published);
        catch_up(&self.redis_received, now.bus.received);
        catch_up(&self.redis_errors, now.bus.errors);
        self.redis_subscriptions.set(now.bus.subscriptions as i64);
        self.queued_frames.set(now.queued_frames as i64);
        self.runtime_tasks.set(now.runtime_tasks as i64);
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// One connection's counters, looked up once so that counting a frame is one atomic add.
pub struct ConnCounters {
    pub sent_messages: IntCounter,
    pub sent_bytes: IntCounter,
    pub received_messages: IntCounter,
    pub received_bytes: IntCounter,
}

impl ConnCounters {
    pub fn new(m: &Metrics, app_id: &str) -> ConnCounters {
        ConnCounters {
            sent_messages: m.ws_messages_sent.with_label_values(&[app_id]),
            sent_bytes: m.ws_sent_bytes.with_label_values(&[app_id]),
            received_messages: m.ws_messages_received.with_label_values(&[app_id]),
            received_bytes: m.ws_received_bytes.with_label_values(&[app_id]),
        }
    }
}

/// Raises a counter to a total kept elsewhere (counters only go up).
fn catch_up(counter: &IntCounter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(name))
    }

    #[test]
    fn gauges_follow_the_snapshot_and_read_zero_when_the_load_is_gone() {
        let m = Metrics::new("t").expect("valid prefix");
        let busy = Snapshot {
            apps: vec![LocalStats {
                app_id: "a1".into(),
                connections: 3,
                channels: 2,
                members: 1,
                history_bytes: 512,
            }],
            open_sockets: 4,
            queued_frames: 12,
            runtime_tasks: 9,
            ..Snapshot::default()
        };
        let text = m.render(&busy);
        assert_eq!(
            line(&text, "t_connected{"),
            Some("t_connected{app_id=\"a1\"} 3")
        );
        assert_eq!(
            line(&text, "t_channels{"),
            Some("t_channels{app_id=\"a1\"} 2")
        );
        assert_eq!(line(&text, "t_open_sockets "), Some("t_open_sockets 4"));
        assert_eq!(line(&text, "t_queued_frames "), Some("t_queued_frames 12"));
        assert_eq!(line(&text, "t_runtime_tasks "), Some("t_runtime_tasks 9"));
        assert_eq!(
            line(&text, "t_history_bytes{"),
            Some("t_history_bytes{app_id=\"a1\"} 512")
        );
        // The app left: its series disappear instead of staying at their last value.
        let text = m.render(&Snapshot::default());
        assert_eq!(line(&text, "t_connected{"), None);
        assert_eq!(line(&text, "t_open_sockets "), Some("t_open_sockets 0"));
        assert_eq!(line(&text, "t_queued_frames "), Some("t_queued_frames 0"));
    }

    #[test]
    fn external_totals_only_move_counters_up() {
        let m = Metrics::new("t").expect("valid prefix");
        let mut now = Snapshot::default();
        now.webhooks.sent = 5;
        now.bus.published = 7;
        let text = m.render(&now);
        assert_eq!(
            line(&text, "t_webhooks_sent_total "),
            Some("t_webhooks_sent_total 5")
        );
        assert_eq!(
            line(&text, "t_redis_published_total "),
            Some("t_redis_published_total 7")
        );
        // A lower total (it cannot happen, but a counter must never go down) changes nothing.
        now.webhooks.sent = 2;
        let text = m.render(&now);
        assert_eq!(
            line(&text, "t_webhooks_sent_total "),
            Some("t_webhooks_sent_total 5")
        );
    }

    #[test]
    fn a_prefix_that_is_not_a_metric_name_is_refused() {
        assert!(Metrics::new("not a name").is_err());
    }
}
