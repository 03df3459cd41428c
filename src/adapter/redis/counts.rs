//! Cluster-wide counts, read from keys every node keeps up to date for itself: which nodes are
//! alive, subscriptions per channel, connections per app. Queries never wait on another node.

use std::collections::HashMap;
use std::sync::Arc;

use super::RedisAdapter;
use crate::app::App;
use crate::channels::handle::ConnHandle;
use crate::protocol::socket_id::SocketId;

impl RedisAdapter {
    /// Registers a connection here and in this node's count; false when the app would be over
    /// `max_connections` here or over the live nodes.
    pub(super) async fn count_connection(&self, app: &App, conn: Arc<ConnHandle>) -> bool {
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
                ns.remove_connection(socket, None, false);
                self.uncount_connection(app).await;
                return false;
            }
        }
        true
    }

    /// Forgets a connection here and takes it off this node's count.
    pub(super) async fn forget_connection(
        &self,
        app: &App,
        socket_id: SocketId,
        user_id: Option<&str>,
    ) {
        if let Some(user) = user_id {
            self.sign_out_cluster(app, socket_id, user).await;
        }
        self.local
            .namespace(&app.id)
            .remove_connection(socket_id, None, false);
        self.uncount_connection(app).await;
    }

    async fn uncount_connection(&self, app: &App) {
        let _: Option<i64> = self
            .script(
                "uncount connection",
                self.scripts
                    .decrement
                    .key(self.keys.connections(&app.id))
                    .arg(&self.keys.node),
            )
            .await;
    }

    /// Node ids whose liveness key exists (this node included).
    pub(super) async fn alive_nodes(&self) -> Option<Vec<String>> {
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
    pub(super) async fn cluster_counts(&self, app: &str) -> Option<HashMap<String, usize>> {
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

    /// Connections of an app over the live nodes.
    pub(super) async fn cluster_connections(&self, app: &str) -> Option<u64> {
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

    /// Applies a subscription change to this node's count and, when Redis answers, replaces
    /// the local `edge` (occupied for +1, vacated for -1), `count` and `version` with the
    /// cluster's: one script does all, so exactly one node sees a channel become occupied or
    /// vacated. Without Redis the count is this node's only, and `version` is 0 (not to be
    /// shown to subscribers as the channel's count).
    pub(super) async fn apply_count(
        &self,
        app: &str,
        channel: &str,
        delta: i64,
        edge: &mut bool,
        count: &mut usize,
        version: &mut u64,
    ) {
        let answer: Option<(i64, i64)> = self
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
                    .arg(&self.keys.node)
                    .arg(self.keys.count_seq(app)),
            )
            .await;
        match answer {
            Some((total, seq)) => {
                let total = total.max(0) as usize;
                *edge = if delta > 0 { total == 1 } else { total == 0 };
                *count = total;
                *version = seq.max(0) as u64;
            }
            None => *version = 0,
        }
    }
}
