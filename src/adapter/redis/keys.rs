//! Redis key and channel names. Every name starts with the configured prefix so that several
//! clusters can share one Redis.

/// Builds the names for one prefix and one node.
#[derive(Clone, Debug)]
pub struct Keys {
    pub prefix: String,
    pub node: String,
}

impl Keys {
    /// The pub/sub channel every node listens on.
    pub fn bus(&self) -> String {
        format!("{}:bus", self.prefix)
    }

    /// Set of the node ids that have registered.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// A node's liveness key (expires when the node stops refreshing it).
    pub fn alive(&self, node: &str) -> String {
        format!("{}:alive:{node}", self.prefix)
    }

    /// Lock that lets exactly one node clean up after a dead one.
    pub fn reaper_lock(&self, node: &str) -> String {
        format!("{}:reap:{node}", self.prefix)
    }

    /// Apps a node has state for (to find its count keys when it dies).
    pub fn node_apps(&self, node: &str) -> String {
        format!("{}:node:{node}:apps", self.prefix)
    }

    /// Presence channels a node has members in, as `app\nchannel`.
    pub fn node_presence(&self, node: &str) -> String {
        format!("{}:node:{node}:presence", self.prefix)
    }

    /// Hash channel → subscriptions of one node for one app.
    pub fn counts(&self, app: &str, node: &str) -> String {
        format!("{}:app:{app}:counts:{node}", self.prefix)
    }

    /// The liveness key of a node is this prefix followed by the node id.
    pub fn alive_prefix(&self) -> String {
        format!("{}:alive:", self.prefix)
    }

    /// The counts key of a node for one app is this prefix followed by the node id.
    pub fn counts_prefix(&self, app: &str) -> String {
        format!("{}:app:{app}:counts:", self.prefix)
    }

    /// Counter that numbers an app's subscription changes over the cluster.
    pub fn count_seq(&self, app: &str) -> String {
        format!("{}:app:{app}:count_seq", self.prefix)
    }

    /// Hash node → connections of one app.
    pub fn connections(&self, app: &str) -> String {
        format!("{}:app:{app}:connections", self.prefix)
    }

    /// Hash `node|socket` → `[member key, user_id, user_info]` of one presence channel.
    pub fn members(&self, app: &str, channel: &str) -> String {
        format!("{}:app:{app}:members:{channel}", self.prefix)
    }

    /// The last event of a cache channel (`data` NUL frame), with a TTL.
    pub fn cache(&self, app: &str, channel: &str) -> String {
        format!("{}:app:{app}:cache:{channel}", self.prefix)
    }

    /// A recorded channel's position: a hash of `epoch`, `top` (the last offset) and `run`
    /// (the Redis `run_id` it was numbered under), docs/recovery.md §4.
    pub fn history_meta(&self, app: &str, channel: &str) -> String {
        format!("{}:app:{app}:history:{channel}:meta", self.prefix)
    }

    /// A recorded channel's events: a list of `offset\nexcept\ntime_ms\nframe`, oldest first,
    /// with consecutive offsets ending at the meta's `top`.
    pub fn history_log(&self, app: &str, channel: &str) -> String {
        format!("{}:app:{app}:history:{channel}:log", self.prefix)
    }

    /// Hash user id → signed-in connections over the cluster, for one app (watchlist events).
    pub fn users(&self, app: &str) -> String {
        format!("{}:app:{app}:users", self.prefix)
    }

    /// Hash user id → signed-in connections on one node, for one app (so a dead node's can be
    /// taken off `users`).
    pub fn node_users(&self, app: &str, node: &str) -> String {
        format!("{}:app:{app}:users:{node}", self.prefix)
    }

    /// This node's field in a members hash.
    pub fn member_field(&self, socket: &str) -> String {
        format!("{}|{socket}", self.node)
    }
}
