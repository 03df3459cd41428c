//! Redis key and channel names. Every name starts with the configured prefix so that several
//! clusters can share one Redis (and one ACL pattern `~prefix:*` covers them all).
//!
//! The layout is slot-safe for Redis Cluster (docs/cluster.md, "Key layout"): every key of an
//! app carries the hash tag `{app:ID}` and every key of one node the tag `{node:ID}`, so each
//! script and each multi-key pipeline touches keys of one hash slot. What must be atomic
//! across nodes (counts, presence, users, history) is per app, so it lives under the app's
//! tag: a node's count of subscribers is a field of the app's counts hash, not a key of its
//! own, and each app keeps its own record of which nodes are alive (`live`) for the scripts
//! that sum over live nodes. Node keys (liveness, what a dead node leaves to reap) are only
//! ever read and written one tag at a time.

/// Builds the names for one prefix and one node.
#[derive(Clone, Debug)]
pub struct Keys {
    pub prefix: String,
    pub node: String,
    /// Redis Cluster: the bus is one sharded channel per app, under the app's tag.
    pub sharded: bool,
}

impl Keys {
    /// `prefix:{app:ID}`: every key of one app hashes to the slot of this tag.
    fn app(&self, app: &str) -> String {
        format!("{}:{{app:{app}}}", self.prefix)
    }

    /// `prefix:{node:ID}`: every key of one node hashes to the slot of this tag.
    fn node_tag(&self, node: &str) -> String {
        format!("{}:{{node:{node}}}", self.prefix)
    }

    /// The pub/sub channel an app's messages that are not about one channel go on (user
    /// transitions, terminations): one channel for the whole cluster on a single Redis; on
    /// Redis Cluster a sharded channel per app in the app's slot, so that the scripts may
    /// publish on it and the shard that holds the app carries its traffic.
    pub fn bus(&self, app: &str) -> String {
        if self.sharded {
            format!("{}:bus", self.app(app))
        } else {
            self.shared_bus()
        }
    }

    /// The pub/sub channel one channel's events go on (broadcasts, numbered events, count
    /// changes): only nodes with subscribers there listen (`interest`). Under the app's tag,
    /// so on Redis Cluster it is a sharded channel in the app's slot, which the history script
    /// may publish on.
    pub fn channel_bus(&self, app: &str, channel: &str) -> String {
        format!("{}:ch:{channel}", self.app(app))
    }

    /// The one bus channel of a single Redis (or Sentinel) setup.
    pub fn shared_bus(&self) -> String {
        format!("{}:bus", self.prefix)
    }

    /// The command that publishes on `bus`: `SPUBLISH` for a sharded channel.
    pub fn publish_command(&self) -> &'static str {
        if self.sharded {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// Set of the node ids that have registered (one key; never in a script or pipeline with
    /// another).
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// A node's liveness key (expires when the node stops refreshing it).
    pub fn alive(&self, node: &str) -> String {
        format!("{}:alive", self.node_tag(node))
    }

    /// Lock that lets exactly one node clean up after a dead one.
    pub fn reaper_lock(&self, node: &str) -> String {
        format!("{}:reap", self.node_tag(node))
    }

    /// Apps a node has state for (to find its counts when it dies).
    pub fn node_apps(&self, node: &str) -> String {
        format!("{}:apps", self.node_tag(node))
    }

    /// Presence channels a node has members in, as `app\nchannel`.
    pub fn node_presence(&self, node: &str) -> String {
        format!("{}:presence", self.node_tag(node))
    }

    /// Hash `node\nchannel` → subscriptions of that node, for one app.
    pub fn counts(&self, app: &str) -> String {
        format!("{}:counts", self.app(app))
    }

    /// Hash node → the time (Redis clock, ms) until which it counts as alive, for one app:
    /// refreshed with the node's liveness key, so scripts in the app's slot can tell live
    /// nodes from dead ones without reading another slot.
    pub fn live(&self, app: &str) -> String {
        format!("{}:live", self.app(app))
    }

    /// Counter that numbers an app's subscription changes over the cluster.
    pub fn count_seq(&self, app: &str) -> String {
        format!("{}:count_seq", self.app(app))
    }

    /// Hash node → connections of one app.
    pub fn connections(&self, app: &str) -> String {
        format!("{}:connections", self.app(app))
    }

    /// Hash `node|socket` → `[member key, user_id, user_info]` of one presence channel.
    pub fn members(&self, app: &str, channel: &str) -> String {
        format!("{}:members:{channel}", self.app(app))
    }

    /// The last event of a cache channel (`data` NUL frame), with a TTL.
    pub fn cache(&self, app: &str, channel: &str) -> String {
        format!("{}:cache:{channel}", self.app(app))
    }

    /// A recorded channel's position: a hash of `epoch`, `top` (the last offset) and `run`
    /// (the Redis `run_id` it was numbered under), docs/recovery.md §4.
    pub fn history_meta(&self, app: &str, channel: &str) -> String {
        format!("{}:history:{channel}:meta", self.app(app))
    }

    /// A recorded channel's events: a list of `offset\nexcept\ntime_ms\nframe`, oldest first,
    /// with consecutive offsets ending at the meta's `top`.
    pub fn history_log(&self, app: &str, channel: &str) -> String {
        format!("{}:history:{channel}:log", self.app(app))
    }

    /// Hash user id → signed-in connections over the cluster, for one app (watchlist events).
    pub fn users(&self, app: &str) -> String {
        format!("{}:users", self.app(app))
    }

    /// Hash user id → signed-in connections on one node, for one app (so a dead node's can be
    /// taken off `users`).
    pub fn node_users(&self, app: &str, node: &str) -> String {
        format!("{}:users:{node}", self.app(app))
    }

    /// This node's field in a members hash.
    pub fn member_field(&self, socket: &str) -> String {
        format!("{}|{socket}", self.node)
    }
}

/// The Redis Cluster hash slot of a key (CRC16/XMODEM of its hash tag, or of the whole key
/// without one, modulo 16384), computed here so the tests can check the layout without a
/// cluster.
#[cfg(test)]
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &bytes[open + 1..];
        rest.iter()
            .position(|b| *b == b'}')
            .filter(|close| *close > 0)
            .map(|close| &rest[..close])
    });
    let mut crc: u16 = 0;
    for b in tagged.unwrap_or(bytes) {
        crc ^= u16::from(*b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot("123456789"), 0x31C3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_ne!(slot("foo{}{bar}"), slot("bar"));
    }
}
