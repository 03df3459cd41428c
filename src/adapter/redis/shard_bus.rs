//! The bus on Redis Cluster: one sharded pub/sub channel per app (`SPUBLISH`/`SSUBSCRIBE`), in
//! the app's slot, so the scripts can publish on it and each app's traffic goes through the
//! master that holds the app. A node subscribes to an app's channel before it accepts the
//! app's first connection here: a node without connections of an app has nothing to deliver
//! for it, so it never hears that app's traffic.
//!
//! The cluster connection tracks the subscriptions and makes them again on whichever master
//! owns the slot after a reconnection or a topology change (a failover, a resharding). Each
//! confirmation after the first for a channel is such a re-subscription: what was published
//! meanwhile is lost, so, as after the single-server bus reconnects, the node re-asserts its
//! state and sends its opted-in recovery subscribers to recover from history.
//!
//! The cluster connection's own re-subscription is not relied on: it does not follow a
//! resharding (Redis drops the subscriptions of a slot that moves, with an `sunsubscribe` push:
//! the node subscribes again at once) and it lost them in a master failover in the tests (after
//! a connection closes, the node subscribes every app's channel again at the next tick, once
//! Redis answers; the cluster connection routes each to the slot's owner then). Subscribing a
//! channel again on the connection that has it changes nothing, so this never duplicates.

use std::collections::HashMap;
use std::sync::Weak;

use redis::{PushKind, Value};

use super::conn::Conn;
use super::endpoint::Pushes;
use super::RedisAdapter;

impl RedisAdapter {
    /// Subscribes this node to `app`'s sharded bus channel, once; a no-op on a single Redis.
    /// Not connected yet, or Redis not answering: the liveness tick tries again.
    pub(super) async fn listen_to(&self, app: &str) {
        if !self.keys.sharded || crate::sync::lock(&self.bus_apps).contains(app) {
            return;
        }
        let Some(Conn::Cluster(mut conn)) = self.endpoint.conn() else {
            return;
        };
        let channel = self.keys.bus(app);
        if self
            .bounded("bus subscription", conn.ssubscribe(&channel))
            .await
            .is_some()
        {
            crate::sync::lock(&self.bus_apps).insert(app.to_string());
        }
    }

    /// Subscribes to the bus channel of every app this node has state for (at each tick, so
    /// a subscription that failed is made as soon as Redis answers).
    pub(super) async fn listen_to_all(&self) {
        if !self.keys.sharded {
            return;
        }
        for (app, _) in self.local.namespaces() {
            self.listen_to(&app).await;
        }
    }

    /// The app whose bus channel Redis dropped, no longer counted as subscribed (so that the
    /// next `listen_to` subscribes again, on the slot's new master).
    fn forget_subscription(&self, channel: &str) -> Option<String> {
        let mut apps = crate::sync::lock(&self.bus_apps);
        let app = apps.iter().find(|a| self.keys.bus(a) == channel).cloned()?;
        apps.remove(&app);
        tracing::info!(
            channel,
            "bus: Redis dropped the subscription (the slot moved); subscribing again"
        );
        Some(app)
    }

    /// A re-subscription: messages may have been lost while the channel was not subscribed.
    fn resubscribed(&self, channel: &str) {
        tracing::info!(
            channel,
            "bus: re-subscribed after a reconnection or topology change"
        );
        self.resync_soon();
        let closed = self.local.close_numbered();
        if closed > 0 {
            tracing::info!(
                connections = closed,
                "bus resubscribed: closed opted-in connections (4200) to recover from history"
            );
        }
    }
}

/// Receives the cluster's pushes for as long as the adapter lives.
pub fn spawn_listener(adapter: Weak<RedisAdapter>, mut pushes: Pushes) {
    tokio::spawn(async move {
        // Confirmations seen per channel: the first answers this node's own SSUBSCRIBE.
        let mut confirmed: HashMap<Vec<u8>, u64> = HashMap::new();
        while let Some(push) = pushes.recv().await {
            let Some(this) = adapter.upgrade() else {
                return;
            };
            match push.kind {
                PushKind::SMessage => {
                    if let Some(Value::BulkString(payload)) = push.data.get(1) {
                        this.receive(payload);
                    }
                }
                PushKind::SSubscribe => {
                    let Some(Value::BulkString(channel)) = push.data.first() else {
                        continue;
                    };
                    let seen = confirmed.entry(channel.clone()).or_insert(0);
                    *seen += 1;
                    if *seen > 1 {
                        this.resubscribed(&String::from_utf8_lossy(channel));
                    }
                }
                // Redis drops a sharded subscription when the channel's slot moves to another
                // master (a resharding); this node never unsubscribes by itself.
                PushKind::SUnsubscribe => {
                    let Some(Value::BulkString(channel)) = push.data.first() else {
                        continue;
                    };
                    let name = String::from_utf8_lossy(channel);
                    // A channel this node left on purpose (`interest`): its next join is a
                    // first subscription again.
                    if this.interest.left(&name) {
                        confirmed.remove(channel);
                        continue;
                    }
                    // A channel's subscription Redis dropped: joined again if still wanted.
                    if this.interest.dropped(&name) {
                        tracing::info!(
                            channel = %name,
                            "bus: Redis dropped the subscription (the slot moved); subscribing again"
                        );
                        continue;
                    }
                    if let Some(app) = this.forget_subscription(&name) {
                        let again = adapter.clone();
                        tokio::spawn(async move {
                            if let Some(this) = again.upgrade() {
                                this.listen_to(&app).await;
                            }
                        });
                    }
                }
                // A connection to some master closed (it died, or the client dropped it after a
                // topology change). Which subscriptions it carried is not known here, and the
                // cluster connection does not always make them again (a failover); so every
                // app's channel is subscribed again at the next tick, routed to its owner then.
                PushKind::Disconnection => {
                    this.health
                        .fail("bus subscription", &"a connection to a cluster node closed");
                    crate::sync::lock(&this.bus_apps).clear();
                    this.interest.disconnected(false);
                }
                _ => {}
            }
        }
    });
}
