//! The seam between "the protocol" and "where subscribers live".
//!
//! Everything the WebSocket and HTTP layers need to know about other connections goes through
//! `Adapter`. The local adapter answers from this node's memory; a cluster adapter (Redis) adds
//! cross-node fan-out and shared state behind the same calls, so the protocol code does not
//! change when a deployment grows.

pub(crate) mod live_count;
pub(crate) mod local;
pub(crate) mod redis;

use async_trait::async_trait;
use serde_json::Value;

use crate::app::{App, Recording};
use crate::channels::cache::CachedEvent;
use crate::channels::handle::ConnHandle;
pub use crate::channels::history::Page;
pub use crate::channels::namespace::{ChannelStats, SubscribeError, Subscribed, Unsubscribed};
use crate::protocol::frames::Frame;
pub use crate::protocol::presence::Member;
use crate::protocol::recovery::{Position, Request};
use crate::protocol::socket_id::SocketId;
pub use local::LocalAdapter;

/// Where subscribers live: what a cluster must answer for every node. All calls are async so
/// that an implementation may talk to a shared store; none may hold a lock across such I/O.
///
/// What only concerns this node (its own connections, sign-ins, closing them) is
/// [`Adapter::local`]'s business, and the cluster's own health and counters are
/// [`Adapter::cluster`]'s.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// This node's connections, channels and sign-ins.
    fn local(&self) -> &LocalAdapter;
    /// The cluster this node is part of, if any.
    fn cluster(&self) -> Option<&dyn Cluster> {
        None
    }
    /// Registers a connection; false when the app is over `max_connections`.
    async fn add_connection(&self, app: &App, conn: ConnHandle) -> bool;
    /// Forgets a connection and its sign-in (channels are left by `unsubscribe` first); the
    /// user's last connection anywhere is `offline` for its watchers.
    async fn remove_connection(&self, app: &App, socket_id: SocketId, user_id: Option<&str>);
    /// A connection signed in as `user_id`: reachable by `terminate_user` and online (its
    /// first connection anywhere is `online` for its watchers when the app has watchlist
    /// events). With a `watchlist`, registers it and answers which of its ids are online
    /// (docs/protocol.md §10.1).
    async fn sign_in(
        &self,
        app: &App,
        socket_id: SocketId,
        user_id: &str,
        watchlist: Option<&[String]>,
    ) -> Vec<String>;
    /// The statuses frame of `socket_id`'s watchlist is queued: transitions held since its
    /// sign-in follow it (`Watchers::release`), so none overtakes it. The watchers are this
    /// node's, whatever the adapter.
    fn watchlist_sent(&self, app: &App, socket_id: SocketId) {
        self.local().namespace(&app.id).watchlist_sent(socket_id);
    }
    /// Subscribes a connection (and, for presence, adds the member).
    async fn subscribe(
        &self,
        app: &App,
        channel: &str,
        conn: &ConnHandle,
        member: Option<Member>,
    ) -> Result<Subscribed, SubscribeError>;
    /// Unsubscribes a connection.
    async fn unsubscribe(&self, app: &App, channel: &str, socket_id: SocketId) -> Unsubscribed;
    /// Delivers a frame to every subscriber of `channel` except `except`.
    async fn broadcast(&self, app: &App, channel: &str, frame: Frame, except: Option<SocketId>);
    /// Stores a cache channel's last event.
    async fn set_cache(&self, app: &App, channel: &str, event: CachedEvent);
    /// A cache channel's last event, if not expired.
    async fn get_cache(&self, app: &App, channel: &str) -> Option<CachedEvent>;
    /// Occupied channels with their counts.
    async fn channels(&self, app: &App) -> Vec<(String, ChannelStats)>;
    /// One channel's counts.
    async fn channel_stats(&self, app: &App, channel: &str) -> ChannelStats;
    /// Distinct user ids on a presence channel.
    async fn presence_users(&self, app: &App, channel: &str) -> Vec<Value>;
    /// The app store changed (an admin API write): every other node should read it now. One
    /// node has nobody to tell.
    async fn apps_changed(&self) {}
    /// Closes every connection signed in as `user_id`, on every node.
    async fn terminate_user(&self, app: &App, user_id: &str);
    /// Connections of the app.
    async fn connection_count(&self, app: &App) -> u64;
    /// A channel's subscription count changed to `count` (numbered `version`, see
    /// `Subscribed::count_version`): every node tells its subscribers (docs/protocol.md §10.2).
    async fn announce_count(&self, app: &App, channel: &str, count: usize, version: u64) {
        self.local().offer_count(&app.id, channel, count, version);
    }
    /// Publishes on a recorded channel (docs/recovery.md): history assigns the offset, and
    /// opted-in subscribers get the frame stamped with it; the others get `frame` unchanged.
    async fn publish_recorded(
        &self,
        app: &App,
        channel: &str,
        frame: Frame,
        except: Option<SocketId>,
        rec: &Recording,
    ) -> Result<Position, HistoryUnavailable>;
    /// An event of a recorded channel was delivered without going into its history (it could
    /// not be written, and the app delivers anyway): that history misses it, so it must start
    /// a new epoch before it is read again. Memory history is never unwritable.
    async fn delivered_unrecorded(&self, _app: &App, _channel: &str) {}
    /// A page of a recorded channel's history (the HTTP API).
    async fn history(
        &self,
        app: &App,
        channel: &str,
        query: &HistoryQuery,
        rec: &Recording,
    ) -> Result<Page, HistoryUnavailable>;
    /// Forgets a recorded channel's history (a new epoch starts).
    async fn purge_history(&self, app: &App, channel: &str) -> Result<(), HistoryUnavailable>;
    /// Subscribes an opted-in connection to a recorded channel and queues its stamped
    /// `subscription_succeeded`, replay and marker (`Subscribed::announced`).
    async fn subscribe_recovering(
        &self,
        app: &App,
        channel: &str,
        conn: &ConnHandle,
        member: Option<Member>,
        request: &Request,
        rec: &Recording,
    ) -> Result<Subscribed, SubscribeError>;
}

/// What `GET …/history` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only list events of this epoch.
    pub epoch: Option<String>,
    /// List events after this offset.
    pub after: u64,
    /// At most this many (0: only the position).
    pub limit: usize,
}

/// History could not be written or read (the shared store is unreachable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryUnavailable;

/// A cluster's own concerns, which a single node does not have.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// Whether the shared store is reachable; `/ready` answers 503 when it is not.
    fn healthy(&self) -> bool;
    /// The bus's counters since start, for the metrics.
    fn stats(&self) -> BusStats;
    /// Leaves the cluster cleanly (removes this node's registration).
    async fn leave(&self);
}

/// One app's figures on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalStats {
    pub app_id: String,
    pub connections: u64,
    pub channels: usize,
    pub members: usize,
    /// Bytes of recorded events in memory history.
    pub history_bytes: usize,
}

/// A cluster bus's totals since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Messages published to the other nodes.
    pub published: u64,
    /// Messages received from the bus (the node's own that come back included).
    pub received: u64,
    /// Failed calls to the shared store.
    pub errors: u64,
    /// Channels whose bus subscription this node holds now (a gauge).
    pub subscriptions: u64,
}

/// Something a cluster adapter discovered on its own, without a connection of this node
/// causing it (cleaning up after a dead node); the server turns it into a webhook.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterEvent {
    /// `user_id` is gone from the presence channel on every node.
    MemberRemoved { channel: String, user_id: Value },
    /// The channel has no subscriber left on any node.
    ChannelVacated { channel: String },
    /// Another node changed the app store (the app id is empty): read it now.
    AppsChanged,
}

/// Where a cluster adapter sends `(app id, event)`.
pub type ClusterEvents = tokio::sync::mpsc::UnboundedSender<(String, ClusterEvent)>;
