//! Prometheus metrics, served on their own port (`metrics_port`, default 9601; 0 turns them
//! off). Names follow Soketi's where one exists, under a configurable prefix (`clarion` by
//! default; `soketi` makes existing Soketi dashboards work).
//!
//! Gauges (connections, channels, presence members) are computed from the live state at every
//! scrape rather than incremented and decremented along the way, so they cannot drift: when
//! the load goes away they read zero.

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::state::State;

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
    pub slow_consumer_disconnects: IntCounter,
    pub rate_limit_rejections: IntCounterVec,
    pub webhooks_sent: IntCounter,
    pub webhooks_failed: IntCounter,
    pub webhooks_dropped: IntCounter,
    pub redis_published: IntCounter,
    pub redis_received: IntCounter,
    pub redis_errors: IntCounter,
    pub broadcast_seconds: Histogram,
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
        let open_sockets = IntGauge::new(
            name("open_sockets"),
            "TCP connections open on the main port (HTTP, handshaking and WebSocket)",
        )?;
        registry.register(Box::new(open_sockets.clone()))?;
        Ok(Metrics {
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
                "Messages received from the cluster bus",
            )?,
            redis_errors: counter("redis_errors_total", "Failed Redis calls")?,
            broadcast_seconds,
            registry,
        })
    }

    /// The text exposition, with the gauges and the externally kept counters refreshed first.
    pub fn render(&self, state: &State) -> String {
        self.connected.reset();
        self.channels.reset();
        self.presence_members.reset();
        for s in state.adapter.local_stats() {
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
        self.open_sockets.set(
            state
                .open_sockets
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        let (sent, failed, dropped) = state.webhooks.stats();
        catch_up(&self.webhooks_sent, sent);
        catch_up(&self.webhooks_failed, failed);
        catch_up(&self.webhooks_dropped, dropped);
        let (published, received, errors) = state.adapter.bus_stats();
        catch_up(&self.redis_published, published);
        catch_up(&self.redis_received, received);
        catch_up(&self.redis_errors, errors);
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

/// Serves `GET /metrics` on its own port until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: Arc<State>) {
    use hyper::service::service_fn;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move {
                    let res = if req.uri().path() == "/metrics" {
                        let mut r = hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(state.metrics.render(&state)),
                        ));
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        r
                    } else {
                        crate::http::response::error(
                            hyper::StatusCode::NOT_FOUND,
                            "Not found: use /metrics",
                        )
                    };
                    Ok::<_, std::convert::Infallible>(res)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
