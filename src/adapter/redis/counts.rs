//! Cluster-wide counts, read from keys every node keeps up to date for itself: which nodes are
//! alive, subscriptions per channel, connections per app. Queries never wait on another node.
//! Each app's counts are summed over the nodes its `live` hash holds alive, in one script in
//! the app's slot (`keys`).

use std::collections::HashMap;

use super::RedisAdapter;
use crate::app::App;
use crate::channels::handle::ConnHandle;
use crate::protocol::socket_id::SocketId;

impl RedisAdapter {
    /// Registers a connection here and in this node's count; false when the app would be over
    /// `max_connections` here or over the live nodes.
    pub(super) async fn count_connection(&self, app: &App, conn: ConnHandle) -> bool {
        let ns = self.local.namespace(&app.id);
        let socket = conn.socket_id;
        let _counting = self.counts_guard.read().await;
        // The local check keeps a node within the limit even while Redis is away.
        if !ns.add_connection(conn, app.max_connections) {
            return false;
        }
        // Redis Cluster: hear the app's bus before serving its first connection here.
        self.listen_to(&app.id).await;
        let total: Option<i64> = self
            .script(
                "count connection",
                &self.scripts.connection_change_call(&self.keys, &app.id, 1),
            )
            .await;
        // The node's own slot: a separate call (Redis Cluster puts it elsewhere).
        let _: Option<i64> = self
            .query(
                "count connection",
                redis::cmd("SADD")
                    .arg(self.keys.node_apps(&self.keys.node))
                    .arg(&app.id),
            )
            .await;
        // Cluster-wide limit: the script summed the live nodes' counts.
        if let (Some(total), true) = (total, app.max_connections > 0) {
            if total.max(0) as u64 > app.max_connections {
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
        let _counting = self.counts_guard.read().await;
        self.local
            .namespace(&app.id)
            .remove_connection(socket_id, None, false);
        self.uncount_connection(app).await;
    }

    async fn uncount_connection(&self, app: &App) {
        let _: Option<i64> = self
            .script(
                "uncount connection",
                &self.scripts.connection_change_call(&self.keys, &app.id, -1),
            )
            .await;
    }

    /// Node ids whose liveness key exists (this node included). One key at a time: on Redis
    /// Cluster they are in different slots.
    pub(super) async fn alive_nodes(&self) -> Option<Vec<String>> {
        let nodes: Vec<String> = self
            .query("list nodes", redis::cmd("SMEMBERS").arg(self.keys.nodes()))
            .await?;
        let mut alive = Vec::with_capacity(nodes.len());
        for n in nodes {
            let exists: i64 = self
                .query("check nodes", redis::cmd("EXISTS").arg(self.keys.alive(&n)))
                .await?;
            if exists == 1 {
                alive.push(n);
            }
        }
        Some(alive)
    }

    /// Subscription counts of every live node for one app, summed per channel.
    pub(super) async fn cluster_counts(&self, app: &str) -> Option<HashMap<String, usize>> {
        let totals: HashMap<String, i64> = self
            .script(
                "read counts",
                &self.scripts.counts_read_call(&self.keys, app),
            )
            .await?;
        Some(
            totals
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(ch, n)| (ch, n as usize))
                .collect(),
        )
    }

    /// Connections of an app over the live nodes.
    pub(super) async fn cluster_connections(&self, app: &str) -> Option<u64> {
        let total: i64 = self
            .script(
                "read connections",
                &self.scripts.connections_read_call(&self.keys, app),
            )
            .await?;
        Some(total.max(0) as u64)
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
                &self
                    .scripts
                    .count_change_call(&self.keys, app, channel, delta),
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
