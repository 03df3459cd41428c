//! The live subscription count (docs/protocol.md §10.2): `pusher_internal:subscription_count`
//! to a channel's subscribers on this node after its count changed anywhere in the cluster.
//!
//! Counts arrive numbered (`Subscribed::count_version`: one counter per node, or per app in
//! Redis), and a count older than the last one seen is dropped, so a subscriber never ends on a
//! stale figure when two changes cross on the bus. On a channel over `THROTTLE_ABOVE`
//! subscriptions this node sends at most one frame per `THROTTLE_EVERY`, on the trailing edge
//! and with the latest count: a busy channel's joins and leaves do not turn into a frame storm.
//!
//! Lock order: a channel's entry here, then the namespace's channel (inside `broadcast`); the
//! frame is queued while the entry is held, so counts leave in the order of their numbers.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::channels::Namespace;
use crate::protocol::frames;

/// Channels with more subscriptions than this get at most one count per `THROTTLE_EVERY`.
pub const THROTTLE_ABOVE: usize = 100;
/// The shortest time between two counts on a throttled channel.
pub const THROTTLE_EVERY: Duration = Duration::from_secs(5);

/// What this node last did for one channel.
#[derive(Debug, Default)]
struct Relay {
    /// The newest count seen, and its number.
    version: u64,
    count: usize,
    last_sent: Option<Instant>,
    /// A trailing send is scheduled; it will carry the newest count.
    scheduled: bool,
}

/// The counts of every app's channels on this node, keyed by (app id, channel).
#[derive(Debug, Default)]
pub struct LiveCounts {
    channels: DashMap<(String, String), Relay>,
}

impl LiveCounts {
    /// A channel's count changed to `count`, numbered `version`: tells this node's subscribers
    /// of it now, later (throttled), or not at all (older than one already seen, or nobody is
    /// subscribed here).
    pub fn offer(
        self: &Arc<Self>,
        ns: &Arc<Namespace>,
        app: &str,
        channel: &str,
        count: usize,
        version: u64,
    ) {
        let key = (app.to_string(), channel.to_string());
        if ns.channel_stats(channel).subscription_count == 0 {
            self.channels.remove(&key);
            return;
        }
        let now = Instant::now();
        let mut relay = self.channels.entry(key.clone()).or_default();
        if version <= relay.version {
            return;
        }
        relay.version = version;
        relay.count = count;
        if relay.scheduled {
            return;
        }
        let due = match relay.last_sent {
            Some(at) if count > THROTTLE_ABOVE && now < at + THROTTLE_EVERY => at + THROTTLE_EVERY,
            _ => {
                relay.last_sent = Some(now);
                // Sent while the entry is held: two counts offered at once leave in the order
                // of their numbers.
                ns.broadcast(channel, &frames::subscription_count(channel, count), None);
                return;
            }
        };
        relay.scheduled = true;
        drop(relay);
        let (this, ns) = (Arc::downgrade(self), ns.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let Some(this) = this.upgrade() else { return };
            if let Some(mut relay) = this.channels.get_mut(&key) {
                relay.scheduled = false;
                relay.last_sent = Some(Instant::now());
                let frame = frames::subscription_count(&key.1, relay.count);
                ns.broadcast(&key.1, &frame, None);
            };
        });
    }

    /// Forgets channels nobody on this node is subscribed to any more.
    pub fn sweep(&self, namespace_of: impl Fn(&str) -> Option<Arc<Namespace>>) {
        self.channels.retain(|(app, channel), relay| {
            relay.scheduled
                || namespace_of(app)
                    .is_some_and(|ns| ns.channel_stats(channel).subscription_count > 0)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::handle::{ConnHandle, Receiver};
    use crate::protocol::socket_id::SocketId;
    use serde_json::Value;

    fn subscriber(ns: &Namespace, n: u64) -> Receiver {
        let (h, rx) = ConnHandle::new(SocketId(n, n), 1000);
        ns.subscribe("c", &h, None, 0).expect("subscribes");
        rx
    }

    fn counts(rx: &Receiver) -> Vec<u64> {
        std::iter::from_fn(|| rx.try_recv())
            .map(|f| {
                let v: Value = serde_json::from_str(f.as_str()).expect("json");
                assert_eq!(v["event"], "pusher_internal:subscription_count");
                let data: Value =
                    serde_json::from_str(v["data"].as_str().expect("string data")).expect("json");
                data["subscription_count"].as_u64().expect("count")
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn counts_arrive_in_order_and_busy_channels_are_throttled() {
        let live = Arc::new(LiveCounts::default());
        let ns = Arc::new(Namespace::default());
        let rx = subscriber(&ns, 1);
        live.offer(&ns, "a", "c", 2, 2);
        live.offer(&ns, "a", "c", 1, 1); // overtaken by version 2: dropped
        assert_eq!(counts(&rx), [2]);
        // Over 100: the first goes at once (nothing sent within 5 s? one was: wait).
        live.offer(&ns, "a", "c", 101, 3);
        live.offer(&ns, "a", "c", 105, 4);
        live.offer(&ns, "a", "c", 110, 5);
        assert!(
            counts(&rx).is_empty(),
            "throttled: the last count went out just now"
        );
        tokio::time::sleep(THROTTLE_EVERY + Duration::from_millis(10)).await;
        tokio::task::yield_now().await;
        assert_eq!(counts(&rx), [110], "one frame, the latest count");
        // Under 100 again: at once.
        live.offer(&ns, "a", "c", 50, 6);
        assert_eq!(counts(&rx), [50]);
    }

    #[tokio::test]
    async fn nobody_here_means_nothing_kept() {
        let live = Arc::new(LiveCounts::default());
        let ns = Arc::new(Namespace::default());
        live.offer(&ns, "a", "c", 3, 1);
        assert!(live.channels.is_empty());
        let _rx = subscriber(&ns, 1);
        live.offer(&ns, "a", "c", 3, 2);
        assert_eq!(live.channels.len(), 1);
        ns.unsubscribe("c", SocketId(1, 1));
        live.sweep(|_| Some(ns.clone()));
        assert!(live.channels.is_empty());
    }
}
