//! The cluster adapter: nodes share one Redis.
//!
//! * Fan-out: a node delivers to its own subscribers at once and publishes the frame on one
//!   pub/sub channel (on Redis Cluster, the app's sharded channel); every other node delivers
//!   it to its subscribers. Each subscriber gets it exactly once, `socket_id` exclusion
//!   included (`bus`, `shard_bus`).
//! * Redis is one server, the master Sentinel names, or a Redis Cluster (`endpoint`, `conn`);
//!   every key and script is slot-safe (`keys`), so the rest does not care which.
//! * Shared state lives in keys (`keys`): per-node subscription counts, per-app connection
//!   counts (`counts`), presence members decided atomically by Lua scripts (`presence`,
//!   `scripts`), cache channels' last events (`cache`).
//! * Liveness: each node refreshes a key with a TTL; a node that dies without warning is
//!   noticed when its key expires, and another node removes its members (announcing
//!   member_removed) and counts (`liveness`). Queries only read keys: they never wait on other
//!   nodes.
//! * Redis trouble never takes a node down: every call has a timeout (`call`), a failure falls
//!   back to the node's local answer, `/ready` reports 503 (`health`), and state is re-asserted
//!   when Redis returns.
//!
//! No lock is held across a Redis call: the local adapter's critical sections are synchronous
//! and end before any Redis I/O starts.

mod apps_signal;
mod bus;
mod cache;
mod call;
mod conn;
mod counts;
mod endpoint;
mod health;
mod history;
mod interest;
mod keys;
mod liveness;
mod presence;
mod probe;
mod script_calls;
mod scripts;
mod shard_bus;
mod users;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use super::{
    Adapter, BusStats, ChannelStats, Cluster, ClusterEvent, ClusterEvents, HistoryQuery,
    HistoryUnavailable, LocalAdapter, Member, Page, SubscribeError, Subscribed, Unsubscribed,
};
use crate::app::{App, Recording};
use crate::channels::cache::CachedEvent;
use crate::channels::handle::ConnHandle;
use crate::channels::namespace::Follow;
use crate::net::redis_servers::Servers;
use crate::protocol::channel_name::ChannelKind;
use crate::protocol::frames::Frame;
use crate::protocol::recovery::{Position, Request};
use crate::protocol::socket_id::SocketId;
use bus::Message;
use health::Health;
use history::Rotations;
use keys::Keys;
use presence::Departure;
use scripts::Scripts;

pub struct RedisAdapter {
    local: Arc<LocalAdapter>,
    keys: Keys,
    /// The Redis server in use and the command connection to it.
    endpoint: endpoint::Endpoint,
    health: Health,
    resync_requested: AtomicBool,
    scripts: Scripts,
    /// Presence departures Redis could not be told about: settled, and announced to the other
    /// nodes, when Redis is back.
    pending_departures: Mutex<Vec<Departure>>,
    /// Recorded channels whose history must start a new epoch (`history::Rotations`).
    rotations: Mutex<Rotations>,
    bus_published: AtomicU64,
    bus_received: AtomicU64,
    /// Held shared while a sign-in or sign-out changes this node's users and their count in
    /// Redis, exclusively while the node re-asserts them (`users`): a sign-in racing a
    /// re-assertion is then counted exactly once.
    users_guard: tokio::sync::RwLock<()>,
    /// The same for subscription and connection counts: held shared from a local change to
    /// its count in Redis, exclusively while the node re-asserts its counts (`liveness`), so
    /// that a subscription made meanwhile is not counted by both.
    counts_guard: tokio::sync::RwLock<()>,
    /// Where events discovered without a local cause (a dead node's members) go.
    events: ClusterEvents,
    /// Apps whose sharded bus channel this node subscribed to (Redis Cluster, `shard_bus`).
    bus_apps: Mutex<HashSet<String>>,
    /// The channels whose events this node hears (`interest`).
    interest: Arc<interest::Interest>,
}

impl RedisAdapter {
    /// Creates the adapter and starts its background tasks (bus listener, liveness). Starting
    /// does not need Redis to be up: the node serves locally until it is. Only a URL that
    /// cannot be used at all is an error.
    pub fn start(
        servers: &Servers,
        prefix: &str,
        events: ClusterEvents,
    ) -> Result<Arc<RedisAdapter>, redis::RedisError> {
        let endpoint = endpoint::Endpoint::new(servers)?;
        let pushes = endpoint.take_pushes();
        let keys = Keys {
            prefix: prefix.to_string(),
            node: format!("{:016x}", rand::random::<u64>()),
            sharded: endpoint.is_cluster(),
        };
        let local = LocalAdapter::new();
        local.spawn_sweeper();
        let adapter = Arc::new(RedisAdapter {
            local,
            keys: keys.clone(),
            endpoint,
            health: Health::new(),
            resync_requested: AtomicBool::new(true),
            pending_departures: Mutex::new(Vec::new()),
            rotations: Mutex::new(Rotations::new()),
            bus_published: AtomicU64::new(0),
            bus_received: AtomicU64::new(0),
            users_guard: tokio::sync::RwLock::new(()),
            counts_guard: tokio::sync::RwLock::new(()),
            events,
            scripts: Scripts::load(),
            bus_apps: Mutex::new(HashSet::new()),
            interest: Arc::new(interest::Interest::default()),
        });
        tracing::info!(node = %keys.node, prefix = %keys.prefix, "redis adapter: joining the cluster");
        match pushes {
            Some(pushes) => shard_bus::spawn_listener(Arc::downgrade(&adapter), pushes),
            None => bus::spawn_listener(Arc::downgrade(&adapter), keys.shared_bus()),
        }
        interest::spawn(Arc::downgrade(&adapter), adapter.interest.clone());
        liveness::spawn(Arc::downgrade(&adapter));
        apps_signal::spawn(Arc::downgrade(&adapter));
        Ok(adapter)
    }

    /// Tries, once, every kind of access the adapter needs (`probe`). A refusal that will not
    /// go away by itself (credentials, TLS, ACL) is an error naming it; a Redis that does not
    /// answer is logged and the node starts anyway, serving locally until Redis is back.
    pub async fn check_access(servers: &Servers, prefix: &str) -> Result<(), String> {
        let keys = Keys {
            prefix: prefix.to_string(),
            node: String::new(),
            sharded: matches!(servers, Servers::Cluster(_)),
        };
        let found = match servers {
            Servers::Cluster(seeds) => probe::cluster(seeds, &keys).await,
            _ => {
                let endpoint = endpoint::Endpoint::new(servers).map_err(|e| e.to_string())?;
                match (endpoint.client().await, servers) {
                    (Ok(client), _) => probe::run(&client, &keys).await,
                    (Err(e), Servers::Sentinel(sentinels)) => {
                        probe::sentinel_problem(sentinels, &e).await
                    }
                    (Err(e), _) => probe::Probe::Unreachable(e.to_string()),
                }
            }
        };
        match found {
            probe::Probe::Ready => Ok(()),
            probe::Probe::Refused(why) => Err(why),
            probe::Probe::Unreachable(why) => {
                tracing::warn!(error = %why, "redis is not reachable; serving locally until it is");
                Ok(())
            }
        }
    }

    /// Asks the liveness task to re-assert this node's state at its next tick.
    fn resync_soon(&self) {
        self.resync_requested.store(true, Ordering::Relaxed);
    }

    /// Hands an event to the server (which turns it into a webhook).
    fn report(&self, app: &str, event: ClusterEvent) {
        // The receiver lives as long as the server; after it, nobody is left to tell.
        let _ = self.events.send((app.to_string(), event));
    }

    /// Subscribes here and in the cluster's counts (and presence), as a subscriber that
    /// follows the channel's events as `follow` says.
    async fn subscribe_as(
        &self,
        app: &App,
        channel: &str,
        conn: &ConnHandle,
        member: Option<Member>,
        follow: Follow,
    ) -> Result<Subscribed, SubscribeError> {
        // Hear the channel's events from the other nodes before the subscriber is confirmed.
        let _listening = self.pin(&app.id, channel).await;
        let _counting = self.counts_guard.read().await;
        let (mut local, joined) = match member {
            None => (
                self.local
                    .namespace(&app.id)
                    .subscribe_with(channel, conn, None, 0, follow)?,
                None,
            ),
            Some(m) => self.join_presence(app, channel, conn, m, follow).await?,
        };
        let presence = local.presence.is_some();
        if local.added {
            self.apply_count(
                &app.id,
                channel,
                1,
                &mut local.occupied,
                &mut local.subscription_count,
                &mut local.count_version,
            )
            .await;
        }
        if presence {
            self.settle_join(app, channel, &mut local, joined).await;
        }
        Ok(local)
    }

    /// `user_count` of a presence channel over the cluster (0 for other channels).
    async fn cluster_user_count(&self, app: &str, channel: &str) -> usize {
        if !ChannelKind::of(channel).presence {
            return 0;
        }
        self.cluster_members(app, channel)
            .await
            .map_or(0, |m| m.len())
    }
}

#[async_trait]
impl Adapter for RedisAdapter {
    fn local(&self) -> &LocalAdapter {
        &self.local
    }

    fn cluster(&self) -> Option<&dyn Cluster> {
        Some(self)
    }

    async fn add_connection(&self, app: &App, conn: ConnHandle) -> bool {
        self.count_connection(app, conn).await
    }

    async fn remove_connection(&self, app: &App, socket_id: SocketId, user_id: Option<&str>) {
        self.forget_connection(app, socket_id, user_id).await
    }

    async fn sign_in(
        &self,
        app: &App,
        socket_id: SocketId,
        user_id: &str,
        watchlist: Option<&[String]>,
    ) -> Vec<String> {
        self.sign_in_cluster(app, socket_id, user_id, watchlist)
            .await
    }

    async fn apps_changed(&self) {
        self.bump_apps_version().await;
    }

    async fn subscribe(
        &self,
        app: &App,
        channel: &str,
        conn: &ConnHandle,
        member: Option<Member>,
    ) -> Result<Subscribed, SubscribeError> {
        self.subscribe_as(app, channel, conn, member, Follow::Plain)
            .await
    }

    async fn unsubscribe(&self, app: &App, channel: &str, socket_id: SocketId) -> Unsubscribed {
        let _counting = self.counts_guard.read().await;
        let mut out = self
            .local
            .namespace(&app.id)
            .unsubscribe(channel, socket_id);
        if !out.was_subscribed {
            return out;
        }
        if out.subscription_count == 0 {
            self.interest
                .maybe_idle(self.keys.channel_bus(&app.id, channel));
        }
        self.apply_count(
            &app.id,
            channel,
            -1,
            &mut out.vacated,
            &mut out.subscription_count,
            &mut out.count_version,
        )
        .await;
        self.leave_presence(app, channel, socket_id, &mut out).await;
        out
    }

    async fn broadcast(&self, app: &App, channel: &str, frame: Frame, except: Option<SocketId>) {
        self.local
            .namespace(&app.id)
            .broadcast(channel, &frame, except);
        self.publish(&Message::Broadcast {
            app: app.id.clone(),
            channel: channel.to_string(),
            except,
            frame,
        })
        .await;
    }

    async fn set_cache(&self, app: &App, channel: &str, event: CachedEvent) {
        self.store_cache(app, channel, event).await
    }

    async fn get_cache(&self, app: &App, channel: &str) -> Option<CachedEvent> {
        self.load_cache(app, channel).await
    }

    async fn channels(&self, app: &App) -> Vec<(String, ChannelStats)> {
        let Some(counts) = self.cluster_counts(&app.id).await else {
            return self.local.namespace(&app.id).channels();
        };
        let mut out = Vec::with_capacity(counts.len());
        for (name, subscription_count) in counts {
            let user_count = self.cluster_user_count(&app.id, &name).await;
            out.push((
                name,
                ChannelStats {
                    subscription_count,
                    user_count,
                },
            ));
        }
        out
    }

    async fn channel_stats(&self, app: &App, channel: &str) -> ChannelStats {
        let Some(counts) = self.cluster_counts(&app.id).await else {
            return self.local.namespace(&app.id).channel_stats(channel);
        };
        ChannelStats {
            subscription_count: counts.get(channel).copied().unwrap_or(0),
            user_count: self.cluster_user_count(&app.id, channel).await,
        }
    }

    async fn presence_users(&self, app: &App, channel: &str) -> Vec<Value> {
        match self.cluster_members(&app.id, channel).await {
            Some(members) => members.into_iter().map(|m| m.user_id).collect(),
            None => self.local.namespace(&app.id).presence_users(channel),
        }
    }

    async fn terminate_user(&self, app: &App, user_id: &str) {
        let m = Message::Terminate {
            app: app.id.clone(),
            user: user_id.to_string(),
        };
        self.publish(&m).await;
        self.deliver_local(m);
    }

    async fn announce_count(&self, app: &App, channel: &str, count: usize, version: u64) {
        self.publish(&Message::Count {
            app: app.id.clone(),
            channel: channel.to_string(),
            count,
            version,
        })
        .await;
        self.local.offer_count(&app.id, channel, count, version);
    }

    async fn connection_count(&self, app: &App) -> u64 {
        match self.cluster_connections(&app.id).await {
            Some(n) => n,
            None => self.local.namespace(&app.id).connection_count(),
        }
    }

    async fn publish_recorded(
        &self,
        app: &App,
        channel: &str,
        frame: Frame,
        except: Option<SocketId>,
        rec: &Recording,
    ) -> Result<Position, HistoryUnavailable> {
        self.append_recorded(app, channel, &frame, except, rec)
            .await
    }

    async fn delivered_unrecorded(&self, app: &App, channel: &str) {
        self.rotate_later(app, channel)
    }

    async fn history(
        &self,
        app: &App,
        channel: &str,
        query: &HistoryQuery,
        rec: &Recording,
    ) -> Result<Page, HistoryUnavailable> {
        self.history_page(app, channel, query, rec).await
    }

    async fn purge_history(&self, app: &App, channel: &str) -> Result<(), HistoryUnavailable> {
        self.purge(app, channel).await
    }

    async fn subscribe_recovering(
        &self,
        app: &App,
        channel: &str,
        conn: &ConnHandle,
        member: Option<Member>,
        request: &Request,
        rec: &Recording,
    ) -> Result<Subscribed, SubscribeError> {
        self.subscribe_numbered(app, channel, conn, member, request, rec)
            .await
    }
}

#[async_trait]
impl Cluster for RedisAdapter {
    fn healthy(&self) -> bool {
        // On Redis Cluster the bus rides on the command connection.
        self.health.is_healthy() && (self.keys.sharded || self.interest.listening())
    }

    fn stats(&self) -> BusStats {
        BusStats {
            published: self.bus_published.load(Ordering::Relaxed),
            received: self.bus_received.load(Ordering::Relaxed),
            errors: self.health.errors(),
            subscriptions: self.interest.count() as u64,
        }
    }

    async fn leave(&self) {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(self.keys.alive(&self.keys.node))
            .ignore();
        let _: Option<()> = self.pipe("leave cluster", &pipe).await;
        // The others reap what is left (nothing, once every connection has closed) right away.
    }
}
