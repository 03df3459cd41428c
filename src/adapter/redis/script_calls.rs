//! The keys and arguments of every script call, built in one place so that a test can check
//! what Redis Cluster requires of each: every key in KEYS (none built inside Lua), all of them
//! in one hash slot, and the bus channel a script publishes on in that slot too.

use redis::Script;

use super::keys::Keys;
use super::liveness::ALIVE_TTL;
use super::scripts::Scripts;

/// One script call, ready to send.
pub struct Call<'a> {
    pub script: &'a Script,
    pub keys: Vec<String>,
    pub args: Vec<Vec<u8>>,
    /// The pub/sub channel the script may publish on (checked by the slot test).
    #[cfg_attr(not(test), allow(dead_code))]
    pub bus: Option<String>,
}

impl<'a> Call<'a> {
    fn new(script: &'a Script, keys: Vec<String>) -> Call<'a> {
        Call {
            script,
            keys,
            args: Vec::new(),
            bus: None,
        }
    }

    fn arg(mut self, a: impl ToString) -> Self {
        self.args.push(a.to_string().into_bytes());
        self
    }

    fn bytes(mut self, a: &[u8]) -> Self {
        self.args.push(a.to_vec());
        self
    }

    /// Publishes on `bus` with the command `keys` names: two arguments.
    fn publishing(mut self, keys: &Keys, app: &str, on: bool) -> Self {
        let bus = keys.bus(app);
        self = self
            .arg(if on { keys.publish_command() } else { "" })
            .arg(&bus);
        self.bus = Some(bus);
        self
    }

    /// The invocation the redis crate sends (`EVALSHA`, loading the script on a miss).
    pub fn invocation(&self) -> redis::ScriptInvocation<'a> {
        let mut inv = self.script.prepare_invoke();
        for k in &self.keys {
            inv.key(k);
        }
        for a in &self.args {
            inv.arg(a.as_slice());
        }
        inv
    }
}

fn ttl_ms() -> u64 {
    ALIVE_TTL.as_millis() as u64
}

impl Scripts {
    /// ARGV: this connection's field, its member value and key, the member limit.
    pub fn join_call(
        &self,
        k: &Keys,
        app: &str,
        channel: &str,
        member: [&str; 3],
        limit: u64,
    ) -> Call<'_> {
        let [field, value, key] = member;
        Call::new(&self.join, vec![k.members(app, channel)])
            .arg(field)
            .arg(value)
            .arg(key)
            .arg(limit)
    }

    pub fn leave_call(
        &self,
        k: &Keys,
        app: &str,
        channel: &str,
        field: &str,
        key: &str,
    ) -> Call<'_> {
        Call::new(&self.leave, vec![k.members(app, channel)])
            .arg(field)
            .arg(key)
    }

    /// Removes `node`'s members of one presence channel.
    pub fn reap_call(&self, k: &Keys, app: &str, channel: &str, node: &str) -> Call<'_> {
        Call::new(&self.reap, vec![k.members(app, channel)]).arg(format!("{node}|"))
    }

    pub fn count_change_call(&self, k: &Keys, app: &str, channel: &str, delta: i64) -> Call<'_> {
        Call::new(
            &self.count_change,
            vec![k.counts(app), k.live(app), k.count_seq(app)],
        )
        .arg(channel)
        .arg(delta)
        .arg(&k.node)
        .arg(ttl_ms())
    }

    pub fn counts_read_call(&self, k: &Keys, app: &str) -> Call<'_> {
        Call::new(&self.counts_read, vec![k.counts(app), k.live(app)])
    }

    /// This node's subscriptions and connections for one app, replacing what Redis holds.
    pub fn counts_assert_call(
        &self,
        k: &Keys,
        app: &str,
        connections: u64,
        counts: &[(String, usize)],
    ) -> Call<'_> {
        let mut call = Call::new(
            &self.counts_assert,
            vec![k.counts(app), k.connections(app), k.live(app)],
        )
        .arg(&k.node)
        .arg(ttl_ms())
        .arg(connections);
        for (channel, n) in counts {
            call = call.arg(channel).arg(n);
        }
        call
    }

    pub fn counts_reap_call(&self, k: &Keys, app: &str, node: &str) -> Call<'_> {
        Call::new(
            &self.counts_reap,
            vec![k.counts(app), k.connections(app), k.live(app)],
        )
        .arg(node)
    }

    pub fn connection_change_call(&self, k: &Keys, app: &str, delta: i64) -> Call<'_> {
        Call::new(
            &self.connection_change,
            vec![k.connections(app), k.live(app)],
        )
        .arg(&k.node)
        .arg(delta)
        .arg(ttl_ms())
    }

    pub fn connections_read_call(&self, k: &Keys, app: &str) -> Call<'_> {
        Call::new(
            &self.connections_read,
            vec![k.connections(app), k.live(app)],
        )
    }

    pub fn live_touch_call(&self, k: &Keys, app: &str) -> Call<'_> {
        Call::new(&self.live_touch, vec![k.live(app)])
            .arg(&k.node)
            .arg(ttl_ms())
    }

    /// ARGV after the keys: new epoch, ttl ms, history size, bus, message head, entry head,
    /// frame, publish command.
    #[allow(clippy::too_many_arguments)]
    pub fn history_append_call(
        &self,
        k: &Keys,
        app: &str,
        channel: &str,
        epoch: &str,
        ttl_ms: u64,
        size: usize,
        head: &str,
        entry_head: &str,
        frame: &str,
    ) -> Call<'_> {
        let bus = k.channel_bus(app, channel);
        let mut call = Call::new(
            &self.history_append,
            vec![k.history_meta(app, channel), k.history_log(app, channel)],
        )
        .arg(epoch)
        .arg(ttl_ms)
        .arg(size)
        .arg(&bus)
        .arg(head)
        .arg(entry_head)
        .bytes(frame.as_bytes())
        .arg(k.publish_command());
        call.bus = Some(bus);
        call
    }

    #[allow(clippy::too_many_arguments)]
    pub fn history_read_call(
        &self,
        k: &Keys,
        app: &str,
        channel: &str,
        epoch: &str,
        ttl_ms: u64,
        after: u64,
        limit: usize,
    ) -> Call<'_> {
        Call::new(
            &self.history_read,
            vec![k.history_meta(app, channel), k.history_log(app, channel)],
        )
        .arg(epoch)
        .arg(ttl_ms)
        .arg(after)
        .arg(limit)
    }

    /// `publish`: whether the app has watchlist events (a transition is published).
    pub fn user_count_call(
        &self,
        k: &Keys,
        app: &str,
        publish: bool,
        head: &str,
        user: &str,
        delta: i64,
    ) -> Call<'_> {
        Call::new(
            &self.user_count,
            vec![k.users(app), k.node_users(app, &k.node)],
        )
        .publishing(k, app, publish)
        .arg(head)
        .arg(user)
        .arg(delta)
    }

    pub fn users_assert_call(
        &self,
        k: &Keys,
        app: &str,
        head: &str,
        users: &[(String, usize)],
    ) -> Call<'_> {
        let mut call = Call::new(
            &self.users_assert,
            vec![k.users(app), k.node_users(app, &k.node)],
        )
        .publishing(k, app, true)
        .arg(head);
        for (user, n) in users {
            call = call.arg(user).arg(n);
        }
        call
    }

    pub fn users_reap_call(&self, k: &Keys, app: &str, node: &str, head: &str) -> Call<'_> {
        Call::new(
            &self.users_reap,
            vec![k.users(app), k.node_users(app, node)],
        )
        .publishing(k, app, true)
        .arg(head)
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::slot;
    use super::*;

    /// Every call with the given keys: both apps and nodes, so that a key built from the
    /// wrong id shows up as a second slot.
    fn every_call<'a>(s: &'a Scripts, k: &Keys, app: &str) -> Vec<(&'static str, Call<'a>)> {
        let counts = vec![("private-a".to_string(), 2), ("b".to_string(), 1)];
        vec![
            (
                "join",
                s.join_call(k, app, "presence-x", ["n|1.2", "[\"u\"]", "u"], 0),
            ),
            ("leave", s.leave_call(k, app, "presence-x", "n|1.2", "u")),
            ("reap", s.reap_call(k, app, "presence-x", "dead")),
            ("count_change", s.count_change_call(k, app, "private-a", 1)),
            ("counts_read", s.counts_read_call(k, app)),
            ("counts_assert", s.counts_assert_call(k, app, 3, &counts)),
            ("counts_reap", s.counts_reap_call(k, app, "dead")),
            ("connection_change", s.connection_change_call(k, app, -1)),
            ("connections_read", s.connections_read_call(k, app)),
            ("live_touch", s.live_touch_call(k, app)),
            (
                "history_append",
                s.history_append_call(k, app, "c", "e", 1000, 10, "N\n", "-\n0\n", "{}"),
            ),
            (
                "history_read",
                s.history_read_call(k, app, "c", "e", 1000, 0, 10),
            ),
            ("user_count", s.user_count_call(k, app, true, "W\n", "u", 1)),
            ("users_assert", s.users_assert_call(k, app, "W\n", &counts)),
            ("users_reap", s.users_reap_call(k, app, "dead", "W\n")),
        ]
    }

    #[test]
    fn every_script_touches_one_slot() {
        let scripts = Scripts::load();
        for sharded in [false, true] {
            let k = Keys {
                prefix: "clarion".into(),
                node: "00ff00ff00ff00ff".into(),
                sharded,
            };
            let mut slots_of_apps = std::collections::HashSet::new();
            for app in ["1", "app-two", "{odd}", "x}y"] {
                for (name, call) in every_call(&scripts, &k, app) {
                    assert!(!call.keys.is_empty(), "{name}: no KEYS");
                    let first = slot(&call.keys[0]);
                    for key in &call.keys {
                        assert_eq!(slot(key), first, "{name} ({app}): {key} in another slot");
                    }
                    if let (true, Some(bus)) = (sharded, &call.bus) {
                        assert_eq!(slot(bus), first, "{name} ({app}): bus {bus} elsewhere");
                    }
                    slots_of_apps.insert(first);
                }
            }
            // The tag is the app, not the prefix: apps spread over the cluster.
            assert!(slots_of_apps.len() > 1);
        }
    }

    #[test]
    fn node_keys_share_the_node_slot() {
        let k = Keys {
            prefix: "clarion".into(),
            node: "n1".into(),
            sharded: true,
        };
        let node = slot(&k.alive("n1"));
        for key in [
            k.reaper_lock("n1"),
            k.node_apps("n1"),
            k.node_presence("n1"),
        ] {
            assert_eq!(slot(&key), node, "{key}");
        }
        assert_eq!(slot(&k.counts("7")), slot(&k.bus("7")));
        assert_eq!(
            slot(&k.counts("7")),
            slot(&k.channel_bus("7", "presence-{x}"))
        );
    }
}
