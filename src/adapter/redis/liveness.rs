//! The node's heartbeat and the cleanup after nodes that died without warning.
//!
//! Every `TICK` a node (with Sentinel: after asking which server is master now; with Redis
//! Cluster: after connecting, if it has not yet, `endpoint`)
//! refreshes its liveness key (TTL `ALIVE_TTL`) and, when asked (at start,
//! after Redis came back), re-asserts its counts and presence members, so that state lost in a
//! Redis restart or missed during an outage comes back without restarting anything. It also
//! looks for registered nodes whose liveness key has expired; the first node to take a node's
//! cleanup lock removes its members (announcing member_removed) and its counts.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use super::presence::{member_value, parse_member_value};
use super::RedisAdapter;
use crate::adapter::ClusterEvent;

/// How often a node refreshes its liveness key.
pub const TICK: Duration = Duration::from_secs(3);
/// How long a silent node is considered alive: a killed node disappears within this plus one
/// tick.
pub const ALIVE_TTL: Duration = Duration::from_secs(10);

pub fn spawn(adapter: Weak<RedisAdapter>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tick.tick().await;
            let Some(this) = adapter.upgrade() else {
                return;
            };
            if this.endpoint.discovers() {
                match this.endpoint.follow().await {
                    // The new master may not have this node's state (a lagging replica).
                    Ok(true) => this.resync_soon(),
                    Ok(false) => {}
                    Err(e) => this.health.fail(this.endpoint.finding(), &e),
                }
            }
            if this.heartbeat().await {
                this.listen_to_all().await;
                // A bus subscription that failed is made again once Redis answers.
                this.interest.nudge();
                if this.resync_requested.swap(false, Ordering::Relaxed) && !this.resync().await {
                    this.resync_soon();
                }
                this.reap_dead_nodes().await;
                this.settle_rotations().await;
            }
        }
    });
}

impl RedisAdapter {
    /// Refreshes the liveness key and, for every app this node serves, its entry in the app's
    /// `live` hash; true when Redis answered. Separate calls: on Redis Cluster the node's key,
    /// the registry and each app live in different slots.
    async fn heartbeat(&self) -> bool {
        let mut set = redis::cmd("SET");
        set.arg(self.keys.alive(&self.keys.node))
            .arg(1)
            .arg("PX")
            .arg(ALIVE_TTL.as_millis() as u64);
        let mut ok = self.query::<()>("heartbeat", &set).await.is_some();
        let mut register = redis::cmd("SADD");
        register.arg(self.keys.nodes()).arg(&self.keys.node);
        ok = ok && self.query::<i64>("heartbeat", &register).await.is_some();
        for (app, _) in self.local.namespaces() {
            if !ok {
                break;
            }
            let touch = self.scripts.live_touch_call(&self.keys, &app);
            ok = self.script::<i64>("heartbeat", &touch).await.is_some();
        }
        if ok && self.health.ok() {
            self.resync_soon();
        }
        ok
    }

    /// Writes this node's whole state (counts, connections, members) again. Idempotent.
    /// Members this node recorded but no longer has (they left while Redis was unreachable)
    /// are removed first, and users gone from the whole cluster are announced.
    async fn resync(&self) -> bool {
        let Some(entries) = self
            .query::<Vec<String>>(
                "read own presence",
                redis::cmd("SMEMBERS").arg(self.keys.node_presence(&self.keys.node)),
            )
            .await
        else {
            return false;
        };
        let mut local_users: std::collections::HashSet<(String, String, String)> =
            Default::default();
        for (app, ns) in self.local.namespaces() {
            for m in ns.local_members() {
                local_users.insert((app.clone(), m.channel, m.member.key));
            }
        }
        let mut departed = Vec::new();
        for entry in entries {
            let Some((app, channel)) = entry.split_once('\n') else {
                continue;
            };
            let gone: Option<Vec<String>> = self
                .script(
                    "reap own members",
                    &self
                        .scripts
                        .reap_call(&self.keys, app, channel, &self.keys.node),
                )
                .await;
            for m in gone
                .unwrap_or_default()
                .iter()
                .filter_map(|v| parse_member_value(v))
            {
                if !local_users.contains(&(app.to_string(), channel.to_string(), m.key)) {
                    departed.push((app.to_string(), channel.to_string(), m.user_id));
                }
            }
        }
        let pending = std::mem::take(&mut *crate::sync::lock(&self.pending_departures));
        for d in pending {
            if !local_users.contains(&(d.app.clone(), d.channel.clone(), d.key)) {
                departed.push((d.app, d.channel, d.user_id));
            }
        }
        // Per app, one script and one transaction in the app's slot; then the node's own
        // records in its slot (Redis Cluster allows no transaction across slots).
        let mut ok = true;
        // No subscription or connection is counted while the counts are replaced: one made
        // meanwhile would be in both.
        let counting = self.counts_guard.write().await;
        for (app, ns) in self.local.namespaces() {
            let counts = ns.local_counts();
            let assert =
                self.scripts
                    .counts_assert_call(&self.keys, &app, ns.connection_count(), &counts);
            ok &= self.script::<i64>("resync", &assert).await.is_some();
        }
        drop(counting);
        let mut mine = redis::pipe();
        mine.atomic();
        for (app, ns) in self.local.namespaces() {
            mine.cmd("SADD")
                .arg(self.keys.node_apps(&self.keys.node))
                .arg(&app)
                .ignore();
            let mut members = redis::pipe();
            members.atomic();
            let mut any = false;
            for m in ns.local_members() {
                let channel = m.channel;
                any = true;
                members
                    .cmd("HSET")
                    .arg(self.keys.members(&app, &channel))
                    .arg(self.keys.member_field(&m.socket_id.to_string()))
                    .arg(member_value(&m.member))
                    .ignore();
                mine.cmd("SADD")
                    .arg(self.keys.node_presence(&self.keys.node))
                    .arg(format!("{app}\n{channel}"))
                    .ignore();
            }
            if any {
                ok &= self.pipe::<()>("resync", &members).await.is_some();
            }
        }
        ok &= self.pipe::<()>("resync", &mine).await.is_some();
        // Signed-in users, for every app this node has or had state for.
        let mut apps: std::collections::HashSet<String> = self
            .query::<Vec<String>>(
                "read own apps",
                redis::cmd("SMEMBERS").arg(self.keys.node_apps(&self.keys.node)),
            )
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        apps.extend(self.local.namespaces().into_iter().map(|(app, _)| app));
        ok &= self.assert_users(apps).await;
        let mut seen = std::collections::HashSet::new();
        departed.retain(|(app, channel, user_id)| {
            seen.insert((app.clone(), channel.clone(), user_id.to_string()))
        });
        for (app, channel, user_id) in departed {
            // Still absent once this node's members are back: announce to the other nodes.
            let present = self
                .cluster_members(&app, &channel)
                .await
                .is_some_and(|m| m.iter().any(|m| m.user_id == user_id));
            if !present {
                self.announce_member_removed(&app, &channel, &user_id, false)
                    .await;
            }
        }
        ok
    }

    /// Cleans up after every registered node whose liveness key has expired.
    async fn reap_dead_nodes(&self) {
        // Just back from an outage: the others may be alive and still reconnecting.
        if self.health.recovered_within(ALIVE_TTL + TICK * 2) {
            return;
        }
        let Some(nodes) = self
            .query::<Vec<String>>("list nodes", redis::cmd("SMEMBERS").arg(self.keys.nodes()))
            .await
        else {
            return;
        };
        let Some(alive) = self.alive_nodes().await else {
            return;
        };
        for node in nodes
            .into_iter()
            .filter(|n| !alive.contains(n) && *n != self.keys.node)
        {
            let locked: Option<Option<String>> = self
                .query(
                    "reaper lock",
                    redis::cmd("SET")
                        .arg(self.keys.reaper_lock(&node))
                        .arg(&self.keys.node)
                        .arg("NX")
                        .arg("EX")
                        .arg(30),
                )
                .await;
            if matches!(locked, Some(Some(_))) {
                self.reap(&node).await;
            }
        }
    }

    /// Removes a dead node's members (announcing the users who are gone everywhere), counts
    /// and registrations.
    async fn reap(&self, node: &str) {
        tracing::warn!(
            node,
            "a cluster node stopped refreshing its liveness key; removing its state"
        );
        let entries: Vec<String> = self
            .query(
                "read dead node",
                redis::cmd("SMEMBERS").arg(self.keys.node_presence(node)),
            )
            .await
            .unwrap_or_default();
        for entry in entries {
            let Some((app, channel)) = entry.split_once('\n') else {
                continue;
            };
            let gone: Option<Vec<String>> = self
                .script(
                    "reap members",
                    &self.scripts.reap_call(&self.keys, app, channel, node),
                )
                .await;
            for m in gone
                .unwrap_or_default()
                .iter()
                .filter_map(|v| parse_member_value(v))
            {
                self.announce_member_removed(app, channel, &m.user_id, true)
                    .await;
            }
        }
        let apps: Vec<String> = self
            .query(
                "read dead node",
                redis::cmd("SMEMBERS").arg(self.keys.node_apps(node)),
            )
            .await
            .unwrap_or_default();
        // Channels the dead node had subscribers on: those left with none are vacated.
        let mut affected: Vec<(String, Vec<String>)> = Vec::new();
        for app in &apps {
            self.reap_users(app, node).await;
            let channels: Vec<String> = self
                .script(
                    "remove dead node",
                    &self.scripts.counts_reap_call(&self.keys, app, node),
                )
                .await
                .unwrap_or_default();
            affected.push((app.clone(), channels));
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.keys.node_apps(node)).ignore();
        pipe.cmd("DEL").arg(self.keys.node_presence(node)).ignore();
        let _: Option<()> = self.pipe("remove dead node", &pipe).await;
        let _: Option<i64> = self
            .query(
                "remove dead node",
                redis::cmd("SREM").arg(self.keys.nodes()).arg(node),
            )
            .await;
        for (app, channels) in affected {
            let Some(totals) = self.cluster_counts(&app).await else {
                continue;
            };
            for channel in channels.into_iter().filter(|c| !totals.contains_key(c)) {
                self.report(&app, ClusterEvent::ChannelVacated { channel });
            }
        }
    }
}
