//! The cluster adapter: nodes share one Redis.
//!
//! * Fan-out: a node delivers to its own subscribers at once and publishes the frame on one
//!   pub/sub channel; every other node delivers it to its subscribers. Each subscriber gets it
//!   exactly once, `socket_id` exclusion included.
//! * Shared state lives in keys: per-node subscription counts, per-app connection counts,
//!   presence members (decided atomically by Lua scripts), cache channels' last events.
//! * Liveness: each node refreshes a key with a TTL; a node that dies without warning is
//!   noticed when its key expires, and another node removes its members (announcing
//!   member_removed) and counts. Queries only read keys: they never wait on other nodes.
//! * Redis trouble never takes a node down: every call has a timeout, a failure falls back to
//!   the node's local answer, `/ready` reports 503, and state is re-asserted when Redis returns.
//!
//! No lock is held across a Redis call: the local adapter's critical sections are synchronous
//! and end before any Redis I/O starts.

mod bus;
mod health;
mod keys;
mod liveness;
mod scripts;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::{Map, Value};

use super::local::LocalAdapter;
use super::{Adapter, ChannelStats, NewMember, SubscribeError, Subscribed, Unsubscribed};
use crate::app::App;
use crate::channels::cache::{CachedEvent, CACHE_TTL};
use crate::protocol::channel_name::ChannelKind;
use crate::protocol::codes;
use crate::protocol::frames::{self, Frame};
use crate::protocol::socket_id::SocketId;
use crate::ws::handle::ConnHandle;
pub use bus::Message;
use health::Health;
use keys::Keys;

/// The longest any single Redis call may take before the node falls back to local answers.
const CALL_TIMEOUT: Duration = Duration::from_millis(1000);

pub struct RedisAdapter {
    local: Arc<LocalAdapter>,
    keys: Keys,
    conn: ConnectionManager,
    health: Health,
    resync_requested: AtomicBool,
    scripts: Scripts,
    /// Presence departures Redis could not be told about (app, channel, member key, user_id):
    /// settled, and announced to the other nodes, when Redis is back.
    pending_departures: std::sync::Mutex<Vec<(String, String, String, Value)>>,
    stats: BusStats,
    /// Webhook events discovered by the reaper.
    sink: std::sync::OnceLock<super::EventSink>,
}

/// Bus counters for the metrics.
#[derive(Default)]
struct BusStats {
    published: std::sync::atomic::AtomicU64,
    received: std::sync::atomic::AtomicU64,
}

struct Scripts {
    join: redis::Script,
    leave: redis::Script,
    reap: redis::Script,
    decrement: redis::Script,
    count_change: redis::Script,
}

impl RedisAdapter {
    /// Creates the adapter and starts its background tasks (bus listener, liveness). Starting
    /// does not need Redis to be up: the node serves locally until it is.
    pub fn start(url: &str, prefix: &str) -> Result<Arc<RedisAdapter>, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis_url: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| format!("redis: {e}"))?;
        let node = format!("{:016x}", rand::random::<u64>());
        let keys = Keys {
            prefix: prefix.to_string(),
            node,
        };
        let local = LocalAdapter::new();
        local.spawn_sweeper();
        let adapter = Arc::new(RedisAdapter {
            local,
            keys: keys.clone(),
            conn,
            health: Health::new(),
            resync_requested: AtomicBool::new(true),
            pending_departures: std::sync::Mutex::new(Vec::new()),
            sink: std::sync::OnceLock::new(),
            stats: BusStats::default(),
            scripts: Scripts {
                join: scripts::join(),
                leave: scripts::leave(),
                reap: scripts::reap(),
                decrement: scripts::decrement(),
                count_change: scripts::count_change(),
            },
        });
        tracing::info!(node = %keys.node, prefix = %keys.prefix, "redis adapter: joining the cluster");
        bus::spawn_listener(Arc::downgrade(&adapter), client, keys.bus());
        liveness::spawn(Arc::downgrade(&adapter));
        Ok(adapter)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.keys.node
    }

    /// Awaits one Redis call with the call timeout; a failure marks Redis unhealthy and gives
    /// None, so every caller falls back to its local answer the same way.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.health.fail(what, &e);
                None
            }
            Err(_) => {
                self.health.fail(what, &"timed out");
                None
            }
        }
    }

    /// Runs a command.
    async fn query<T: redis::FromRedisValue>(&self, what: &str, cmd: &redis::Cmd) -> Option<T> {
        let mut conn = self.conn.clone();
        self.bounded(what, cmd.query_async::<T>(&mut conn)).await
    }

    /// Runs a pipeline.
    async fn pipe<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
    ) -> Option<T> {
        let mut conn = self.conn.clone();
        self.bounded(what, pipe.query_async::<T>(&mut conn)).await
    }

    /// Runs a script.
    async fn script<T: redis::FromRedisValue>(
        &self,
        what: &str,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Option<T> {
        let mut conn = self.conn.clone();
        self.bounded(what, inv.invoke_async::<T>(&mut conn)).await
    }

    /// Publishes a message to the other nodes.
    async fn publish(&self, m: &Message) {
        let Some(bytes) = bus::encode(&self.keys.node, m) else {
            return;
        };
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        let _: Option<i64> = self
            .query(
                "publish",
                redis::cmd("PUBLISH").arg(self.keys.bus()).arg(bytes),
            )
            .await;
    }

    /// Applies a message from another node to this node's subscribers.
    fn deliver_local(&self, m: Message) {
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        match m {
            Message::Broadcast {
                app,
                channel,
                except,
                frame,
            } => {
                self.local
                    .namespace(&app)
                    .broadcast(&channel, &frame, except);
            }
            Message::Terminate { app, user } => {
                self.local.namespace(&app).terminate_user(
                    &user,
                    codes::UNAUTHORIZED,
                    "Connection terminated by the application",
                );
            }
        }
    }

    /// Asks the liveness task to re-assert this node's state at its next tick.
    fn resync_soon(&self) {
        self.resync_requested.store(true, Ordering::Relaxed);
    }

    /// Node ids whose liveness key exists (this node included).
    async fn alive_nodes(&self) -> Option<Vec<String>> {
        let nodes: Vec<String> = self
            .query("list nodes", redis::cmd("SMEMBERS").arg(self.keys.nodes()))
            .await?;
        if nodes.is_empty() {
            return Some(nodes);
        }
        let mut pipe = redis::pipe();
        for n in &nodes {
            pipe.cmd("EXISTS").arg(self.keys.alive(n));
        }
        let alive: Vec<i64> = self.pipe("check nodes", &pipe).await?;
        Some(
            nodes
                .into_iter()
                .zip(alive)
                .filter(|(_, a)| *a == 1)
                .map(|(n, _)| n)
                .collect(),
        )
    }

    /// Subscription counts of every live node for one app, summed per channel.
    async fn cluster_counts(&self, app: &str) -> Option<HashMap<String, usize>> {
        let nodes = self.alive_nodes().await?;
        let mut pipe = redis::pipe();
        for n in &nodes {
            pipe.cmd("HGETALL").arg(self.keys.counts(app, n));
        }
        let per_node: Vec<HashMap<String, i64>> = if nodes.is_empty() {
            Vec::new()
        } else {
            self.pipe("read counts", &pipe).await?
        };
        let mut total: HashMap<String, usize> = HashMap::new();
        for counts in per_node {
            for (ch, n) in counts {
                if n > 0 {
                    *total.entry(ch).or_default() += n as usize;
                }
            }
        }
        Some(total)
    }

    /// The members of a presence channel, deduplicated by member key (first value wins).
    async fn cluster_members(
        &self,
        app: &str,
        channel: &str,
    ) -> Option<Vec<(String, Value, Value)>> {
        let vals: Vec<String> = self
            .query(
                "read members",
                redis::cmd("HVALS").arg(self.keys.members(app, channel)),
            )
            .await?;
        Some(dedupe_members(&vals))
    }
}

/// Parses member values (`[key, user_id, user_info]`) and keeps one per key.
fn dedupe_members(vals: &[String]) -> Vec<(String, Value, Value)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for v in vals {
        if let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(v) {
            if let (Some(Value::String(key)), Some(id)) = (parts.first(), parts.get(1)) {
                if seen.insert(key.clone()) {
                    out.push((
                        key.clone(),
                        id.clone(),
                        parts.get(2).cloned().unwrap_or(Value::Null),
                    ));
                }
            }
        }
    }
    out
}

fn member_value(m: &NewMember) -> String {
    Value::Array(vec![
        Value::String(m.key.clone()),
        m.user_id.clone(),
        m.user_info.clone(),
    ])
    .to_string()
}

#[async_trait]
impl Adapter for RedisAdapter {
    async fn add_connection(&self, app: &App, conn: Arc<ConnHandle>) -> bool {
        let ns = self.local.namespace(&app.id);
        let socket = conn.socket_id;
        // The local check keeps a node within the limit even while Redis is away.
        if !ns.add_connection(conn, app.max_connections) {
            return false;
        }
        let key = self.keys.connections(&app.id);
        let mut pipe = redis::pipe();
        pipe.cmd("HINCRBY")
            .arg(&key)
            .arg(&self.keys.node)
            .arg(1)
            .ignore();
        pipe.cmd("SADD")
            .arg(self.keys.node_apps(&self.keys.node))
            .arg(&app.id)
            .ignore();
        if self.pipe::<()>("count connection", &pipe).await.is_none() || app.max_connections == 0 {
            return true;
        }
        // Cluster-wide limit: sum the live nodes' counts (one read, no node is asked).
        if let Some(total) = self.cluster_connections(&app.id).await {
            if total > app.max_connections {
                ns.remove_connection(socket, None);
                let _: Option<i64> = self
                    .script(
                        "uncount connection",
                        self.scripts.decrement.key(&key).arg(&self.keys.node),
                    )
                    .await;
                return false;
            }
        }
        true
    }

    async fn remove_connection(&self, app: &App, socket_id: SocketId, user_id: Option<&str>) {
        self.local
            .namespace(&app.id)
            .remove_connection(socket_id, user_id);
        let key = self.keys.connections(&app.id);
        let _: Option<i64> = self
            .script(
                "uncount connection",
                self.scripts.decrement.key(&key).arg(&self.keys.node),
            )
            .await;
    }

    async fn subscribe(
        &self,
        app: &App,
        channel: &str,
        conn: &Arc<ConnHandle>,
        member: Option<NewMember>,
    ) -> Result<Subscribed, SubscribeError> {
        let ns = self.local.namespace(&app.id);
        let presence = member.is_some();
        let (mut local, joined) = match member {
            None => (ns.subscribe(channel, conn, None, 0)?, None),
            Some(m) => {
                // Presence: the cluster decides the limit and member_added atomically.
                let field = self.keys.member_field(&conn.socket_id.to_string());
                let members_key = self.keys.members(&app.id, channel);
                let value = member_value(&m);
                let joined: Option<(i64, Vec<String>)> = self
                    .script(
                        "presence join",
                        self.scripts
                            .join
                            .key(&members_key)
                            .arg(&field)
                            .arg(&value)
                            .arg(&m.key)
                            .arg(app.max_presence_members_per_channel),
                    )
                    .await;
                if let Some((-1, _)) = joined {
                    return Err(SubscribeError::ChannelFull {
                        limit: app.max_presence_members_per_channel,
                    });
                }
                // Without Redis the local limit is all there is.
                let max_local = if joined.is_some() {
                    0
                } else {
                    app.max_presence_members_per_channel
                };
                (ns.subscribe(channel, conn, Some(m), max_local)?, joined)
            }
        };
        if local.added {
            self.apply_count(
                &app.id,
                channel,
                1,
                &mut local.occupied,
                &mut local.subscription_count,
            )
            .await;
        }
        if !presence {
            return Ok(local);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("SADD")
            .arg(self.keys.node_presence(&self.keys.node))
            .arg(format!("{}\n{channel}", app.id))
            .ignore();
        let _: Option<()> = self.pipe("count subscription", &pipe).await;
        if let Some((connections, vals)) = joined {
            local.member_added = local.added && connections == 1;
            let mut ids = Vec::new();
            let mut hash = Map::new();
            for (key, id, info) in dedupe_members(&vals) {
                ids.push(id);
                hash.insert(key, info);
            }
            local.presence = Some((ids, hash));
        }
        Ok(local)
    }

    async fn unsubscribe(&self, app: &App, channel: &str, socket_id: SocketId) -> Unsubscribed {
        let mut out = self
            .local
            .namespace(&app.id)
            .unsubscribe(channel, socket_id);
        if !out.was_subscribed {
            return out;
        }
        self.apply_count(
            &app.id,
            channel,
            -1,
            &mut out.vacated,
            &mut out.subscription_count,
        )
        .await;
        if let Some((key, user_id)) = out.member.clone() {
            let left: Option<i64> = self
                .script(
                    "presence leave",
                    self.scripts
                        .leave
                        .key(self.keys.members(&app.id, channel))
                        .arg(self.keys.member_field(&socket_id.to_string()))
                        .arg(&key),
                )
                .await;
            // With Redis reachable the cluster decides; without it, the local answer stands and
            // the other nodes are told once Redis is back.
            match left {
                Some(left) => out.member_removed = (left == 0).then_some(user_id),
                None => {
                    if out.member_removed.is_some() {
                        let mut pending = match self.pending_departures.lock() {
                            Ok(g) => g,
                            Err(p) => p.into_inner(),
                        };
                        pending.push((app.id.clone(), channel.to_string(), key, user_id));
                    }
                }
            }
        }
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
        let mut value = Vec::with_capacity(event.data.len() + 1 + event.frame.as_str().len());
        value.extend_from_slice(event.data.as_bytes());
        value.push(0);
        value.extend_from_slice(event.frame.as_str().as_bytes());
        self.local.namespace(&app.id).set_cache(channel, event);
        let _: Option<()> = self
            .query(
                "store cache",
                redis::cmd("SET")
                    .arg(self.keys.cache(&app.id, channel))
                    .arg(value)
                    .arg("PX")
                    .arg(CACHE_TTL.as_millis() as u64),
            )
            .await;
    }

    async fn get_cache(&self, app: &App, channel: &str) -> Option<CachedEvent> {
        let key = self.keys.cache(&app.id, channel);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        match self
            .pipe::<(Option<Vec<u8>>, i64)>("read cache", &pipe)
            .await
        {
            Some((Some(value), pttl)) if pttl > 0 => {
                let split = value.iter().position(|b| *b == 0)?;
                let (data, frame) = value.split_at(split);
                let data = String::from_utf8(data.to_vec()).ok()?;
                let frame = String::from_utf8(frame.get(1..)?.to_vec()).ok()?;
                let age = CACHE_TTL.saturating_sub(Duration::from_millis(pttl as u64));
                Some(CachedEvent {
                    frame: Frame::from(frame),
                    data,
                    stored_at: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
                })
            }
            Some(_) => None,
            None => self.local.namespace(&app.id).get_cache(channel),
        }
    }

    async fn channels(&self, app: &App) -> Vec<(String, ChannelStats)> {
        let Some(counts) = self.cluster_counts(&app.id).await else {
            return self.local.namespace(&app.id).channels();
        };
        let mut out = Vec::with_capacity(counts.len());
        for (name, subscription_count) in counts {
            let user_count = if ChannelKind::of(&name).presence {
                self.cluster_members(&app.id, &name)
                    .await
                    .map_or(0, |m| m.len())
            } else {
                0
            };
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
        let user_count = if ChannelKind::of(channel).presence {
            self.cluster_members(&app.id, channel)
                .await
                .map_or(0, |m| m.len())
        } else {
            0
        };
        ChannelStats {
            subscription_count: counts.get(channel).copied().unwrap_or(0),
            user_count,
        }
    }

    async fn presence_users(&self, app: &App, channel: &str) -> Vec<Value> {
        match self.cluster_members(&app.id, channel).await {
            Some(members) => members.into_iter().map(|(_, id, _)| id).collect(),
            None => self.local.namespace(&app.id).presence_users(channel),
        }
    }

    async fn add_user(&self, app: &App, user_id: &str, socket_id: SocketId) {
        self.local.namespace(&app.id).add_user(user_id, socket_id)
    }

    async fn remove_user(&self, app: &App, user_id: &str, socket_id: SocketId) {
        self.local
            .namespace(&app.id)
            .remove_user(user_id, socket_id)
    }

    async fn terminate_user(&self, app: &App, user_id: &str) {
        let m = Message::Terminate {
            app: app.id.clone(),
            user: user_id.to_string(),
        };
        self.publish(&m).await;
        self.deliver_local(m);
    }

    async fn connection_count(&self, app: &App) -> u64 {
        match self.cluster_connections(&app.id).await {
            Some(n) => n,
            None => self.local.namespace(&app.id).connection_count(),
        }
    }

    fn healthy(&self) -> bool {
        self.health.is_healthy()
    }

    fn close_all(&self, code: u16, reason: &str) {
        self.local.close_all(code, reason);
    }

    fn local_connections(&self) -> u64 {
        self.local.local_connections()
    }

    fn local_stats(&self) -> Vec<super::LocalStats> {
        self.local.local_stats()
    }

    fn bus_stats(&self) -> (u64, u64, u64) {
        (
            self.stats.published.load(Ordering::Relaxed),
            self.stats.received.load(Ordering::Relaxed),
            self.health.errors(),
        )
    }

    fn close_app(&self, app_id: &str, code: u16, reason: &str) {
        self.local.close_app(app_id, code, reason);
    }

    async fn leave_cluster(&self) {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(self.keys.alive(&self.keys.node))
            .ignore();
        let _: Option<()> = self.pipe("leave cluster", &pipe).await;
        // The others reap what is left (nothing, once every connection has closed) right away.
    }

    fn set_event_sink(&self, sink: super::EventSink) {
        let _ = self.sink.set(sink);
    }
}

impl RedisAdapter {
    /// Applies a subscription change to this node's count and, when Redis answers, replaces
    /// the local `edge` (occupied for +1, vacated for -1) and `count` with the cluster's.
    async fn apply_count(
        &self,
        app: &str,
        channel: &str,
        delta: i64,
        edge: &mut bool,
        count: &mut usize,
    ) {
        let total: Option<i64> = self
            .script(
                "count subscription",
                self.scripts
                    .count_change
                    .key(self.keys.counts(app, &self.keys.node))
                    .arg(channel)
                    .arg(delta)
                    .arg(self.keys.nodes())
                    .arg(self.keys.alive_prefix())
                    .arg(self.keys.counts_prefix(app))
                    .arg(&self.keys.node),
            )
            .await;
        if let Some(total) = total {
            let total = total.max(0) as usize;
            *edge = if delta > 0 { total == 1 } else { total == 0 };
            *count = total;
        }
    }

    /// Hands an event to the webhook sink, if one is set.
    fn report(&self, app: &str, event: crate::webhooks::Event) {
        if let Some(sink) = self.sink.get() {
            sink(app, event);
        }
    }

    /// Connections of an app over the live nodes.
    async fn cluster_connections(&self, app: &str) -> Option<u64> {
        let nodes = self.alive_nodes().await?;
        let counts: HashMap<String, i64> = self
            .query(
                "read connections",
                redis::cmd("HGETALL").arg(self.keys.connections(app)),
            )
            .await?;
        Some(
            counts
                .into_iter()
                .filter(|(n, _)| nodes.contains(n))
                .map(|(_, c)| c.max(0) as u64)
                .sum(),
        )
    }

    /// Announces that a user left a presence channel, e.g. after a node died; `here` also
    /// tells this node's subscribers (false when they were told already).
    async fn announce_member_removed(&self, app: &str, channel: &str, user_id: &Value, here: bool) {
        self.report(
            app,
            crate::webhooks::Event::member_removed(channel, user_id),
        );
        let frame = frames::member_removed(channel, user_id);
        if here {
            self.local.namespace(app).broadcast(channel, &frame, None);
        }
        self.publish(&Message::Broadcast {
            app: app.to_string(),
            channel: channel.to_string(),
            except: None,
            frame,
        })
        .await;
    }
}
