//! The live dashboard's data (docs/admin-api.md#the-dashboard): what this node is doing now,
//! per app, and the last 15 minutes sampled every 5 s so a chart is full as soon as the page
//! opens. The page (`dashboard.html`, no build step, no CDN) reads only `GET /stats` of the
//! admin port and writes apps through the admin API.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::metrics::Snapshot;
use crate::state::State;

/// The page, served as it is.
pub const PAGE: &str = include_str!("dashboard.html");

/// How often the history is sampled, and how many samples are kept (15 minutes).
const EVERY: Duration = Duration::from_secs(5);
const KEPT: usize = 180;
/// Busiest channels listed per app.
const BUSIEST: usize = 5;

/// One app at one moment: connections, and messages received and sent since start.
#[derive(Clone, Debug)]
struct AppSample {
    app_id: String,
    connections: u64,
    messages_in: u64,
    messages_out: u64,
}

#[derive(Clone, Debug)]
struct Sample {
    unix_ms: u64,
    apps: Vec<AppSample>,
}

/// The last 15 minutes of samples.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Each app's figures in `snapshot` (this node's, taken now), with its message counters.
fn sample(state: &State, snapshot: &Snapshot) -> Sample {
    let m = &state.metrics;
    let apps = snapshot
        .apps
        .iter()
        .map(|a| AppSample {
            messages_in: m.ws_messages_received.with_label_values(&[&a.app_id]).get(),
            messages_out: m.ws_messages_sent.with_label_values(&[&a.app_id]).get(),
            connections: a.connections,
            app_id: a.app_id.clone(),
        })
        .collect();
    Sample {
        unix_ms: now_ms(),
        apps,
    }
}

impl History {
    /// Samples every 5 s while the server lives.
    pub fn spawn_sampler(self: &Arc<Self>, state: Weak<State>) {
        let history = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            loop {
                tick.tick().await;
                let Some(state) = state.upgrade() else {
                    return;
                };
                let s = sample(&state, &state.snapshot());
                let mut samples = crate::sync::lock(&history.samples);
                samples.push_back(s);
                while samples.len() > KEPT {
                    samples.pop_front();
                }
            }
        });
    }

    fn series(&self) -> Value {
        let samples = crate::sync::lock(&self.samples);
        Value::Array(
            samples
                .iter()
                .map(|s| {
                    json!({
                        "t": s.unix_ms,
                        "apps": s.apps.iter().map(|a| json!({
                            "id": a.app_id,
                            "connections": a.connections,
                            "messages_in": a.messages_in,
                            "messages_out": a.messages_out,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }
}

/// `GET /stats`: the node now, each app with its busiest channels, and the history.
pub fn stats(state: &State, history: &History) -> Value {
    let snapshot = state.snapshot();
    let now = sample(state, &snapshot);
    let namespaces = state.adapter.local().namespaces();
    let apps: Vec<Value> = state
        .apps()
        .iter()
        .map(|app| {
            let here = snapshot.apps.iter().find(|a| a.app_id == app.id);
            let counted = now.apps.iter().find(|a| a.app_id == app.id);
            let mut busiest = namespaces
                .iter()
                .find(|(id, _)| *id == app.id)
                .map(|(_, ns)| ns.channels())
                .unwrap_or_default();
            busiest.sort_by_key(|c| std::cmp::Reverse(c.1.subscription_count));
            busiest.truncate(BUSIEST);
            json!({
                "id": app.id,
                "enabled": app.enabled,
                "connections": here.map_or(0, |a| a.connections),
                "channels": here.map_or(0, |a| a.channels),
                "presence_members": here.map_or(0, |a| a.members),
                "messages_in": counted.map_or(0, |a| a.messages_in),
                "messages_out": counted.map_or(0, |a| a.messages_out),
                "busiest_channels": busiest.iter().map(|(name, s)| json!({
                    "name": name,
                    "subscriptions": s.subscription_count,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let cluster = state.adapter.cluster();
    json!({
        "now": now.unix_ms,
        "open_sockets": snapshot.open_sockets,
        "webhooks": {
            "queued": state.webhooks.pending(),
            "sent": snapshot.webhooks.sent,
            "failed": snapshot.webhooks.failed,
            "dropped": snapshot.webhooks.dropped,
        },
        "redis": {
            "enabled": cluster.is_some(),
            "healthy": cluster.is_none_or(|c| c.healthy()),
            "published": snapshot.bus.published,
            "received": snapshot.bus.received,
            "errors": snapshot.bus.errors,
        },
        "app_store": {
            "kind": state.config.app_store,
            "unreachable": state.metrics.app_store_unreachable.get() == 1,
        },
        "apps": apps,
        "history": history.series(),
    })
}
