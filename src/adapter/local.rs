//! The single-node adapter: every answer comes from this process's memory.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use serde_json::Value;

use super::live_count::LiveCounts;
use super::{
    Adapter, ChannelStats, HistoryQuery, HistoryUnavailable, LocalStats, Member, Page,
    SubscribeError, Subscribed, Unsubscribed,
};
use crate::app::{App, Recording};
use crate::channels::cache::CachedEvent;
use crate::channels::handle::ConnHandle;
use crate::channels::history::Budget;
use crate::channels::Namespace;
use crate::protocol::codes::Fatal;
use crate::protocol::frames::Frame;
use crate::protocol::recovery::{Position, Request};
use crate::protocol::socket_id::SocketId;

/// Per-app namespaces of this node.
#[derive(Debug, Default)]
pub struct LocalAdapter {
    namespaces: DashMap<String, Arc<Namespace>>,
    /// Live subscription counts sent to this node's subscribers.
    live_counts: Arc<LiveCounts>,
    /// What memory history may hold over every app (`max_history_memory`).
    budget: Arc<Budget>,
}

impl LocalAdapter {
    pub fn new() -> Arc<LocalAdapter> {
        Arc::new(LocalAdapter::default())
    }

    /// A node whose memory history holds at most `limit` bytes over every app (0: no limit).
    pub fn with_history_limit(limit: usize) -> Arc<LocalAdapter> {
        Arc::new(LocalAdapter {
            budget: Arc::new(Budget::new(limit)),
            ..LocalAdapter::default()
        })
    }

    /// Forgets the least recently published channel histories, over every app, until memory
    /// history is back under nine tenths of its limit. A forgotten channel starts a new epoch
    /// at its next event, so positions in the old one get `epoch_changed` (docs/recovery.md).
    /// The channel just published to (`app`, `channel`) is kept: forgetting it would only start
    /// it over at its next event.
    fn evict_history(&self, app: &str, channel: &str) {
        let mut excess = self.budget.excess();
        let mut ages: Vec<(std::time::Instant, String, String, usize)> = Vec::new();
        for (app, ns) in self.namespaces() {
            for (at, ch, bytes) in ns.history_ages() {
                ages.push((at, app.clone(), ch, bytes));
            }
        }
        ages.retain(|(_, a, ch, _)| !(a == app && ch == channel));
        ages.sort_unstable_by_key(|a| a.0);
        let mut evicted = 0;
        for (_, a, ch, bytes) in ages {
            if excess == 0 {
                break;
            }
            self.namespace(&a).purge_history(&ch);
            excess = excess.saturating_sub(bytes);
            evicted += 1;
        }
        tracing::warn!(
            channels = evicted,
            bytes = self.budget.used(),
            "memory history over max_history_memory: forgot the least recently published channels (their clients get epoch_changed)"
        );
    }

    /// The namespace of an app, created on first use. The shard lock is released before the
    /// caller touches the namespace.
    pub fn namespace(&self, app_id: &str) -> Arc<Namespace> {
        if let Some(ns) = self.namespaces.get(app_id) {
            return ns.clone();
        }
        self.namespaces
            .entry(app_id.to_string())
            .or_insert_with(|| Arc::new(Namespace::with_budget(self.budget.clone())))
            .clone()
    }

    /// Every app namespace on this node.
    pub fn namespaces(&self) -> Vec<(String, Arc<Namespace>)> {
        self.namespaces
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    /// Periodically drops expired cache entries and idle namespaces.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { break };
                for ns in this.namespaces.iter() {
                    ns.sweep_cache();
                }
                this.live_counts
                    .sweep(|app| this.namespaces.get(app).map(|n| n.clone()));
                this.namespaces
                    .retain(|_, ns| !ns.is_idle() || Arc::strong_count(ns) > 1);
            }
        });
    }

    /// Registers a sign-in here, announced to this node's watchers when `announce`, and
    /// the connection's watchlist; answers which of the watched users are signed in here.
    pub fn sign_in_here(
        &self,
        app_id: &str,
        socket_id: SocketId,
        user_id: &str,
        watchlist: Option<&[String]>,
        announce: bool,
    ) -> Vec<String> {
        let ns = self.namespace(app_id);
        ns.add_user(user_id, socket_id, announce);
        let Some(ids) = watchlist else {
            return Vec::new();
        };
        ns.watch(socket_id, ids);
        ids.iter()
            .filter(|id| ns.is_signed_in(id))
            .cloned()
            .collect()
    }

    /// Tells this node's subscribers of a channel its new count (`LiveCounts::offer`).
    pub fn offer_count(&self, app_id: &str, channel: &str, count: usize, version: u64) {
        let ns = self.namespace(app_id);
        self.live_counts.offer(&ns, app_id, channel, count, version);
    }

    /// Closes every opted-in subscriber that follows a cluster's numbering (`Namespace::
    /// close_numbered`); returns how many.
    pub fn close_numbered(&self) -> usize {
        self.namespaces()
            .iter()
            .map(|(_, ns)| ns.close_numbered())
            .sum()
    }

    /// Closes every connection of this node (shutdown).
    pub fn close_all(&self, why: Fatal) {
        for (_, ns) in self.namespaces() {
            ns.close_all(why);
        }
    }

    /// Closes this node's connections of one app (removed, disabled or re-keyed by a reload).
    pub fn close_app(&self, app_id: &str, why: Fatal) {
        if let Some(ns) = self.namespaces.get(app_id).map(|n| n.clone()) {
            ns.close_all(why);
        }
    }

    /// Connections still open on this node, over all apps.
    pub fn connections(&self) -> u64 {
        self.namespaces()
            .iter()
            .map(|(_, ns)| ns.connection_count())
            .sum()
    }

    /// Frames waiting in every connection's outbound queue on this node, counted now (a
    /// walk over the connections, so only for the metrics' scrape, never per message).
    pub fn queued_frames(&self) -> u64 {
        self.namespaces()
            .iter()
            .map(|(_, ns)| ns.queued_frames() as u64)
            .sum()
    }

    /// Per-app figures of this node, for the metrics and `/usage`.
    pub fn stats(&self) -> Vec<LocalStats> {
        self.namespaces()
            .into_iter()
            .map(|(app_id, ns)| LocalStats {
                app_id,
                // Not yet authorized ones are open connections too (docs/protocol.md §10.3).
                connections: ns.connection_count() + ns.pending_count() as u64,
                channels: ns.channel_count(),
                members: ns.member_count(),
                history_bytes: ns.history_bytes(),
            })
            .collect()
    }
}

#[async_trait]
impl Adapter for LocalAdapter {
    fn local(&self) -> &LocalAdapter {
        self
    }

    async fn add_connection(&self, app: &App, conn: ConnHandle) -> bool {
        self.namespace(&app.id)
            .add_connection(conn, app.max_connections)
    }

    async fn remove_connection(&self, app: &App, socket_id: SocketId, user_id: Option<&str>) {
        self.namespace(&app.id)
            .remove_connection(socket_id, user_id, app.enable_watchlist_events)
    }

    async fn sign_in(
        &self,
        app: &App,
        socket_id: SocketId,
        user_id: &str,
        watchlist: Option<&[String]>,
    ) -> Vec<String> {
        self.sign_in_here(
            &app.id,
            socket_id,
            user_id,
            watchlist,
            app.enable_watchlist_events,
        )
    }

    async fn subscribe(
        &self,
        app: &App,
        channel: &str,
        conn: &ConnHandle,
        member: Option<Member>,
    ) -> Result<Subscribed, SubscribeError> {
        self.namespace(&app.id).subscribe(
            channel,
            conn,
            member,
            app.max_presence_members_per_channel,
        )
    }

    async fn unsubscribe(&self, app: &App, channel: &str, socket_id: SocketId) -> Unsubscribed {
        self.namespace(&app.id).unsubscribe(channel, socket_id)
    }

    async fn broadcast(&self, app: &App, channel: &str, frame: Frame, except: Option<SocketId>) {
        self.namespace(&app.id).broadcast(channel, &frame, except);
    }

    async fn set_cache(&self, app: &App, channel: &str, event: CachedEvent) {
        self.namespace(&app.id).set_cache(channel, event)
    }

    async fn get_cache(&self, app: &App, channel: &str) -> Option<CachedEvent> {
        self.namespace(&app.id).get_cache(channel)
    }

    async fn channels(&self, app: &App) -> Vec<(String, ChannelStats)> {
        self.namespace(&app.id).channels()
    }

    async fn channel_stats(&self, app: &App, channel: &str) -> ChannelStats {
        self.namespace(&app.id).channel_stats(channel)
    }

    async fn presence_users(&self, app: &App, channel: &str) -> Vec<Value> {
        self.namespace(&app.id).presence_users(channel)
    }

    async fn terminate_user(&self, app: &App, user_id: &str) {
        self.namespace(&app.id).terminate_user(user_id);
    }

    async fn connection_count(&self, app: &App) -> u64 {
        self.namespace(&app.id).connection_count()
    }

    async fn publish_recorded(
        &self,
        app: &App,
        channel: &str,
        frame: Frame,
        except: Option<SocketId>,
        rec: &Recording,
    ) -> Result<Position, HistoryUnavailable> {
        let at = self
            .namespace(&app.id)
            .publish_recorded(channel, &frame, except, rec);
        if self.budget.over() {
            self.evict_history(&app.id, channel);
        }
        Ok(at)
    }

    async fn history(
        &self,
        app: &App,
        channel: &str,
        query: &HistoryQuery,
        rec: &Recording,
    ) -> Result<Page, HistoryUnavailable> {
        Ok(self.namespace(&app.id).history_page(
            channel,
            query.epoch.as_deref(),
            query.after,
            query.limit,
            rec,
        ))
    }

    async fn purge_history(&self, app: &App, channel: &str) -> Result<(), HistoryUnavailable> {
        self.namespace(&app.id).purge_history(channel);
        Ok(())
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
        self.namespace(&app.id).subscribe_recovering(
            channel,
            conn,
            member,
            app.max_presence_members_per_channel,
            request,
            rec,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::handle::Receiver;
    use std::task::Poll;

    fn app(id: &str) -> App {
        App {
            id: id.into(),
            ..App::default()
        }
    }

    async fn connect(adapter: &LocalAdapter, app: &App, n: u64) -> (ConnHandle, Receiver) {
        let (h, rx) = ConnHandle::new(SocketId(n, n), 10);
        assert!(adapter.add_connection(app, h.clone()).await);
        (h, rx)
    }

    #[tokio::test]
    async fn apps_are_kept_apart_and_a_reload_closes_only_the_affected_app() {
        let adapter = LocalAdapter::default();
        let (a, b) = (app("a"), app("b"));
        let (a1, ra1) = connect(&adapter, &a, 1).await;
        let (_b1, rb1) = connect(&adapter, &b, 2).await;
        adapter
            .subscribe(&a, "news", &a1, None)
            .await
            .expect("public channel");
        assert_eq!(adapter.connections(), 2);
        let mut stats = adapter.stats();
        stats.sort_by(|x, y| x.app_id.cmp(&y.app_id));
        assert_eq!(
            stats,
            vec![
                LocalStats {
                    app_id: "a".into(),
                    connections: 1,
                    channels: 1,
                    members: 0,
                    history_bytes: 0
                },
                LocalStats {
                    app_id: "b".into(),
                    connections: 1,
                    channels: 0,
                    members: 0,
                    history_bytes: 0
                },
            ]
        );
        assert_eq!(
            adapter.channels(&b).await,
            vec![],
            "b sees none of a's channels"
        );
        adapter.close_app("a", Fatal::AppDisabled);
        assert_eq!(ra1.poll_close(), Poll::Ready(Fatal::AppDisabled));
        assert_eq!(rb1.poll_close(), Poll::Pending);
    }

    #[tokio::test]
    async fn terminate_user_reaches_the_signed_in_connections_of_that_app_only() {
        let adapter = LocalAdapter::default();
        let (a, b) = (app("a"), app("b"));
        let (a1, ra1) = connect(&adapter, &a, 1).await;
        let (b1, rb1) = connect(&adapter, &b, 2).await;
        adapter.sign_in(&a, a1.socket_id, "u", None).await;
        adapter.sign_in(&b, b1.socket_id, "u", None).await;
        adapter.terminate_user(&a, "u").await;
        assert_eq!(ra1.poll_close(), Poll::Ready(Fatal::TerminatedByApp));
        assert_eq!(rb1.poll_close(), Poll::Pending, "same user id, other app");
        adapter.remove_connection(&a, a1.socket_id, Some("u")).await;
        assert_eq!(adapter.connection_count(&a).await, 0);
    }
}
