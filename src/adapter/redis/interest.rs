//! Interest-based fan-out: a node hears a channel's events only while it has subscribers on
//! that channel. Every channel has its own bus channel (`Keys::channel_bus`); the node
//! subscribes to it before its first subscriber there is confirmed, and leaves it once the
//! last one has gone, so the bus traffic a node receives grows with what its clients watch,
//! not with everything the cluster carries (docs/cluster.md, "Interest-based fan-out").
//!
//! One task (`spawn`) makes every subscription change, in batches, so changes to one bus
//! channel reach Redis in the order they were decided: a leave decided before a join is sent
//! before it, on the same connection. The rules that keep a subscriber from missing events:
//!
//! * A subscribe *pins* the channel before it waits, and unpins it after the subscriber is in
//!   the namespace: the task never leaves a channel that is pinned or has local subscribers.
//! * A channel being left is no longer counted as subscribed from the moment the leave is
//!   decided, so a subscribe arriving meanwhile waits for the join sent after it.
//! * Nobody waits while the bus is down (events from other nodes are missed then anyway, as
//!   before); when it is back every channel with local subscribers is joined again, and the
//!   node re-asserts its state and sends its opted-in subscribers to recover (`bus`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::PubSubSink;
use redis::cluster_async::ClusterConnection;
use tokio::sync::{oneshot, Notify};

use super::conn::Conn;
use super::RedisAdapter;

/// How long a subscriber waits for its channel's bus subscription before it is confirmed
/// anyway (Redis slow or gone: it then gets this node's events only until the bus is back).
const JOIN_WAIT: Duration = Duration::from_secs(2);
/// How often every subscribed bus channel is checked for local subscribers (a channel left
/// some other way than `unsubscribe`, a connection closed with its app, is left then).
const SWEEP: Duration = Duration::from_secs(10);
/// Channels per SUBSCRIBE or UNSUBSCRIBE command.
const BATCH: usize = 500;

/// Where subscription commands go: the single server's pub/sub connection, or the cluster
/// connection (sharded subscriptions, routed to the slot's master).
#[derive(Clone)]
pub enum Sink {
    Single(PubSubSink),
    Cluster(ClusterConnection),
}

impl Sink {
    async fn join(&mut self, channels: &[String]) -> redis::RedisResult<()> {
        match self {
            Sink::Single(s) => s.subscribe(channels).await,
            Sink::Cluster(c) => c.ssubscribe(channels).await,
        }
    }

    async fn leave(&mut self, channels: &[String]) -> redis::RedisResult<()> {
        match self {
            Sink::Single(s) => s.unsubscribe(channels).await,
            Sink::Cluster(c) => c.sunsubscribe(channels).await,
        }
    }
}

/// `(app, channel)`: what a bus channel carries.
type Target = (String, String);

#[derive(Default)]
struct State {
    /// The single server's pub/sub connection while it is up (a cluster's is the command
    /// connection, always at hand).
    single: Option<PubSubSink>,
    /// Bus channels joined on the current connection.
    subscribed: HashMap<String, Target>,
    /// Sharded bus channels being left: their unsubscription confirmation is expected
    /// (`shard_bus`).
    leaving: HashSet<String>,
    /// Subscribes in progress per bus channel.
    pins: HashMap<String, (Target, usize)>,
    /// Who waits for a bus channel to be joined.
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
    /// Bus channels that may have lost their last local subscriber.
    idle: HashSet<String>,
    /// Join every channel with local subscribers (a new connection).
    rejoin_all: bool,
}

/// The node's bus subscriptions per channel.
#[derive(Default)]
pub struct Interest {
    state: Mutex<State>,
    wake: Notify,
}

/// Holds a channel's bus subscription while a subscriber is being added.
pub struct Pinned {
    interest: Arc<Interest>,
    bus: String,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let mut s = crate::sync::lock(&self.interest.state);
        if let Some((_, n)) = s.pins.get_mut(&self.bus) {
            *n -= 1;
            if *n == 0 {
                s.pins.remove(&self.bus);
                // A subscribe that failed leaves nobody: the channel may be idle.
                s.idle.insert(self.bus.clone());
            }
        }
    }
}

impl Interest {
    /// The single server's pub/sub connection is up: every channel is joined on it again.
    pub fn connected(&self, sink: PubSubSink) {
        let mut s = crate::sync::lock(&self.state);
        s.single = Some(sink);
        s.subscribed.clear();
        s.leaving.clear();
        s.rejoin_all = true;
        drop(s);
        self.wake.notify_one();
    }

    /// The bus connection is gone (a single server's pub/sub connection, or one of a cluster's
    /// node connections): nothing counts as joined, and nobody waits.
    pub fn disconnected(&self, single: bool) {
        let mut s = crate::sync::lock(&self.state);
        if single {
            s.single = None;
        }
        s.subscribed.clear();
        s.leaving.clear();
        s.rejoin_all = true;
        s.waiters.clear();
        drop(s);
        self.wake.notify_one();
    }

    /// A local subscriber of the bus channel may have been the last.
    pub fn maybe_idle(&self, bus: String) {
        crate::sync::lock(&self.state).idle.insert(bus);
        self.wake.notify_one();
    }

    /// Redis confirmed leaving a sharded bus channel: true when this node asked for it (so a
    /// later join is a first subscription, not a re-subscription after a loss).
    pub fn left(&self, bus: &str) -> bool {
        crate::sync::lock(&self.state).leaving.remove(bus)
    }

    /// Redis dropped a sharded bus channel by itself (its slot moved): it is joined again,
    /// if still wanted, at once. False when the channel is not one of this node's.
    pub fn dropped(&self, bus: &str) -> bool {
        let mut s = crate::sync::lock(&self.state);
        if s.subscribed.remove(bus).is_none() {
            return false;
        }
        s.rejoin_all = true;
        drop(s);
        self.wake.notify_one();
        true
    }

    /// Whether a single server's pub/sub connection is up (a node is not ready before: it
    /// would confirm subscribers that cannot hear the other nodes yet).
    pub fn listening(&self) -> bool {
        crate::sync::lock(&self.state).single.is_some()
    }

    /// Bus channels joined now (for the metrics).
    pub fn count(&self) -> usize {
        crate::sync::lock(&self.state).subscribed.len()
    }

    /// Asks the task to look again (a tick: a cluster connection may be back).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }
}

impl RedisAdapter {
    /// Pins `channel`'s bus subscription for a subscriber about to be added, waiting (at most
    /// `JOIN_WAIT`) until it is joined; the subscription stays while the guard lives.
    pub(super) async fn pin(&self, app: &str, channel: &str) -> Pinned {
        let bus = self.keys.channel_bus(app, channel);
        let waiting = {
            let mut s = crate::sync::lock(&self.interest.state);
            let entry = s
                .pins
                .entry(bus.clone())
                .or_insert(((app.to_string(), channel.to_string()), 0));
            entry.1 += 1;
            let up = s.single.is_some()
                || (self.keys.sharded && matches!(self.endpoint.conn(), Some(Conn::Cluster(_))));
            if s.subscribed.contains_key(&bus) || !up {
                None
            } else {
                let (tx, rx) = oneshot::channel();
                s.waiters.entry(bus.clone()).or_default().push(tx);
                Some(rx)
            }
        };
        if let Some(rx) = waiting {
            self.interest.wake.notify_one();
            if tokio::time::timeout(JOIN_WAIT, rx).await.is_err() {
                tracing::debug!(channel, "bus: subscription not confirmed in time");
            }
        }
        Pinned {
            interest: self.interest.clone(),
            bus,
        }
    }

    /// Whether this node has subscribers on the channel now.
    fn has_local(&self, target: &Target) -> bool {
        self.local
            .namespace(&target.0)
            .channel_stats(&target.1)
            .subscription_count
            > 0
    }

    /// Makes the subscriptions match the interest: joins what is pinned (or, after a new
    /// connection, everything with local subscribers) and leaves what has nobody left.
    async fn reconcile(&self, sweep: bool) {
        let sink = {
            let s = crate::sync::lock(&self.interest.state);
            match (&s.single, self.endpoint.conn()) {
                (Some(p), _) => Some(Sink::Single(p.clone())),
                (None, Some(Conn::Cluster(c))) => Some(Sink::Cluster(c)),
                _ => None,
            }
        };
        let Some(mut sink) = sink else {
            return;
        };
        let everything = {
            let mut s = crate::sync::lock(&self.interest.state);
            std::mem::take(&mut s.rejoin_all)
        };
        let local: Vec<(String, Target)> = if everything {
            self.local_channels()
        } else {
            Vec::new()
        };
        let (join, leave) = {
            let mut s = crate::sync::lock(&self.interest.state);
            if sweep {
                let all: Vec<String> = s.subscribed.keys().cloned().collect();
                s.idle.extend(all);
            }
            let mut leave = Vec::new();
            for bus in std::mem::take(&mut s.idle) {
                let Some(target) = s.subscribed.get(&bus) else {
                    continue;
                };
                if !s.pins.contains_key(&bus) && !self.has_local(target) {
                    s.subscribed.remove(&bus);
                    if self.keys.sharded {
                        s.leaving.insert(bus.clone());
                    }
                    leave.push(bus);
                }
            }
            let mut join: HashMap<String, Target> = local.into_iter().collect();
            for (bus, (target, _)) in &s.pins {
                join.insert(bus.clone(), target.clone());
            }
            join.retain(|bus, _| !s.subscribed.contains_key(bus));
            (join, leave)
        };
        for batch in leave.chunks(BATCH) {
            if let Err(e) = sink.leave(batch).await {
                self.health.fail("bus unsubscription", &e);
            }
        }
        let join: Vec<(String, Target)> = join.into_iter().collect();
        for batch in join.chunks(BATCH) {
            let names: Vec<String> = batch.iter().map(|(b, _)| b.clone()).collect();
            let ok = match tokio::time::timeout(JOIN_WAIT, sink.join(&names)).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    self.health.fail("bus subscription", &e);
                    false
                }
                Err(_) => {
                    self.health.fail("bus subscription", &"timed out");
                    false
                }
            };
            let mut s = crate::sync::lock(&self.interest.state);
            for (bus, target) in batch {
                if ok {
                    s.subscribed.insert(bus.clone(), target.clone());
                } else {
                    // Joined again at the next tick or connection.
                    s.rejoin_all = true;
                }
                // Waiters go on either way: without Redis they get this node's events only.
                s.waiters.remove(bus);
            }
        }
    }

    /// Every channel with subscribers on this node, with its bus channel.
    fn local_channels(&self) -> Vec<(String, Target)> {
        let mut out = Vec::new();
        for (app, ns) in self.local.namespaces() {
            for (channel, _) in ns.channels() {
                out.push((
                    self.keys.channel_bus(&app, &channel),
                    (app.clone(), channel),
                ));
            }
        }
        out
    }
}

/// Runs the node's subscription changes for as long as the adapter lives.
pub fn spawn(adapter: Weak<RedisAdapter>, interest: Arc<Interest>) {
    tokio::spawn(async move {
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.tick().await;
        loop {
            let notified = tokio::select! {
                _ = interest.wake.notified() => true,
                _ = sweep.tick() => false,
            };
            let Some(this) = adapter.upgrade() else {
                return;
            };
            this.reconcile(!notified).await;
        }
    });
}
