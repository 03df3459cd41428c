//! The seam between "the protocol" and "where subscribers live".
//!
//! Everything the WebSocket and HTTP layers need to know about other connections goes through
//! `Adapter`. The local adapter answers from this node's memory; a cluster adapter (Redis) adds
//! cross-node fan-out and shared state behind the same calls, so the protocol code does not
//! change when a deployment grows.

pub mod local;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::app::App;
use crate::channels::cache::CachedEvent;
pub use crate::channels::namespace::{
    ChannelStats, NewMember, SubscribeError, Subscribed, Unsubscribed,
};
use crate::protocol::frames::Frame;
use crate::protocol::socket_id::SocketId;
use crate::ws::handle::ConnHandle;

/// Where subscribers live. All calls are async so that an implementation may talk to a shared
/// store; none may hold a lock across such I/O.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// Registers a connection; false when the app is over `max_connections`.
    async fn add_connection(&self, app: &App, conn: Arc<ConnHandle>) -> bool;
    /// Forgets a connection and its sign-in (channels are left by `unsubscribe` first).
    async fn remove_connection(&self, app: &App, socket_id: SocketId, user_id: Option<&str>);
    /// Subscribes a connection (and, for presence, adds the member).
    async fn subscribe(
        &self,
        app: &App,
        channel: &str,
        conn: &Arc<ConnHandle>,
        member: Option<NewMember>,
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
    /// Records a signed-in user.
    async fn add_user(&self, app: &App, user_id: &str, socket_id: SocketId);
    /// Forgets that `socket_id` is signed in as `user_id`.
    async fn remove_user(&self, app: &App, user_id: &str, socket_id: SocketId);
    /// Closes every connection signed in as `user_id`.
    async fn terminate_user(&self, app: &App, user_id: &str);
    /// Connections of the app.
    async fn connection_count(&self, app: &App) -> u64;
    /// Whether the adapter can do its whole job (a cluster adapter: its shared store is
    /// reachable). `/ready` answers 503 when it cannot.
    fn healthy(&self) -> bool {
        true
    }
    /// Closes every connection of this node (shutdown).
    fn close_all(&self, code: u16, reason: &str);
    /// Closes this node's connections of one app (the app was removed or disabled by a reload).
    fn close_app(&self, app_id: &str, code: u16, reason: &str);
    /// Connections still open on this node, over all apps.
    fn local_connections(&self) -> u64;
    /// Per-app figures of this node, for the metrics' gauges.
    fn local_stats(&self) -> Vec<LocalStats>;
    /// Cluster bus counters: published, received, failed calls.
    fn bus_stats(&self) -> (u64, u64, u64) {
        (0, 0, 0)
    }
    /// Leaves the cluster cleanly (a cluster adapter removes this node's registration).
    async fn leave_cluster(&self) {}
    /// Where the adapter reports events it discovers on its own (a cluster adapter cleaning up
    /// after a dead node: member_removed, channel_vacated), for webhooks.
    fn set_event_sink(&self, _sink: EventSink) {}
}

/// One app's figures on this node.
#[derive(Clone, Debug, Default)]
pub struct LocalStats {
    pub app_id: String,
    pub connections: u64,
    pub channels: usize,
    pub members: usize,
}

/// Receives `(app id, event)` for webhooks.
pub type EventSink = Arc<dyn Fn(&str, crate::webhooks::Event) + Send + Sync>;
