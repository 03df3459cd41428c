//! Presence across nodes. A channel's members hash maps `node|socket` to the JSON array
//! `[member key, user_id, user_info]`; Lua scripts count a user's connections over every node
//! atomically, and `protocol::presence` decides from those counts whether `member_added` or
//! `member_removed` is due, exactly as on one node.
//!
//! When Redis cannot be told that a member left, the departure is kept and settled (and
//! announced to the other nodes) once Redis is back.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::RedisAdapter;
use crate::adapter::{ClusterEvent, SubscribeError, Subscribed, Unsubscribed};
use crate::app::App;
use crate::channels::handle::ConnHandle;
use crate::channels::namespace::{Follow, Roster};
use crate::protocol::frames;
use crate::protocol::presence::{self, Member};
use crate::protocol::socket_id::SocketId;

/// A member who left while Redis was unreachable.
#[derive(Clone, Debug)]
pub struct Departure {
    pub app: String,
    pub channel: String,
    pub key: String,
    pub user_id: Value,
}

/// What the join script answered: the user's connections on the channel over the cluster
/// (this one included) and every member value.
pub struct Joined {
    connections: i64,
    values: Vec<String>,
}

impl RedisAdapter {
    /// Adds the member here and in the cluster's members hash, with the cluster deciding the
    /// member limit; without Redis the local limit is all there is.
    pub(super) async fn join_presence(
        &self,
        app: &App,
        channel: &str,
        conn: &ConnHandle,
        member: Member,
        follow: Follow,
    ) -> Result<(Subscribed, Option<Joined>), SubscribeError> {
        let value = member_value(&member);
        let joined: Option<(i64, Vec<String>)> = self
            .script(
                "presence join",
                &self.scripts.join_call(
                    &self.keys,
                    &app.id,
                    channel,
                    [
                        &self.keys.member_field(&conn.socket_id.to_string()),
                        &value,
                        &member.key,
                    ],
                    app.max_presence_members_per_channel,
                ),
            )
            .await;
        if let Some((-1, _)) = joined {
            return Err(SubscribeError::ChannelFull {
                limit: app.max_presence_members_per_channel,
            });
        }
        let max_local = if joined.is_some() {
            0
        } else {
            app.max_presence_members_per_channel
        };
        let local = self.local.namespace(&app.id).subscribe_with(
            channel,
            conn,
            Some(member),
            max_local,
            follow,
        )?;
        let joined = joined.map(|(connections, values)| Joined {
            connections,
            values,
        });
        Ok((local, joined))
    }

    /// Records that this node has members on the channel (for the reaper) and, when Redis
    /// answered the join, replaces the local member_added and roster with the cluster's.
    pub(super) async fn settle_join(
        &self,
        app: &App,
        channel: &str,
        local: &mut Subscribed,
        joined: Option<Joined>,
    ) {
        let mut pipe = redis::pipe();
        pipe.cmd("SADD")
            .arg(self.keys.node_presence(&self.keys.node))
            .arg(format!("{}\n{channel}", app.id))
            .ignore();
        let _: Option<()> = self.pipe("count subscription", &pipe).await;
        if let Some(joined) = joined {
            local.member_added =
                presence::announces_member_added(local.added, joined.connections.max(0) as u64);
            let mut roster = Roster {
                ids: Vec::new(),
                hash: Map::new(),
            };
            for m in dedupe_members(&joined.values) {
                roster.ids.push(m.user_id);
                roster.hash.insert(m.key, m.user_info);
            }
            local.presence = Some(roster);
        }
    }

    /// Takes the leaving connection out of the cluster's members hash; the cluster decides
    /// member_removed, or the local answer stands and is settled later without Redis.
    pub(super) async fn leave_presence(
        &self,
        app: &App,
        channel: &str,
        socket_id: SocketId,
        out: &mut Unsubscribed,
    ) {
        let Some((key, user_id)) = out.member.clone() else {
            return;
        };
        let left: Option<i64> = self
            .script(
                "presence leave",
                &self.scripts.leave_call(
                    &self.keys,
                    &app.id,
                    channel,
                    &self.keys.member_field(&socket_id.to_string()),
                    &key,
                ),
            )
            .await;
        match left {
            Some(left) => {
                out.member_removed =
                    presence::announces_member_removed(left.max(0) as u64).then_some(user_id)
            }
            None if out.member_removed.is_some() => {
                crate::sync::lock(&self.pending_departures).push(Departure {
                    app: app.id.clone(),
                    channel: channel.to_string(),
                    key,
                    user_id,
                });
            }
            None => {}
        }
    }

    /// The members of a presence channel over the cluster, one per member key.
    pub(super) async fn cluster_members(&self, app: &str, channel: &str) -> Option<Vec<Member>> {
        let vals: Vec<String> = self
            .query(
                "read members",
                redis::cmd("HVALS").arg(self.keys.members(app, channel)),
            )
            .await?;
        Some(dedupe_members(&vals))
    }

    /// Announces that a user left a presence channel, e.g. after a node died; `here` also
    /// tells this node's subscribers (false when they were told already).
    pub(super) async fn announce_member_removed(
        &self,
        app: &str,
        channel: &str,
        user_id: &Value,
        here: bool,
    ) {
        self.report(
            app,
            ClusterEvent::MemberRemoved {
                channel: channel.to_string(),
                user_id: user_id.clone(),
            },
        );
        let frame = frames::member_removed(channel, user_id);
        if here {
            self.local.namespace(app).broadcast(channel, &frame, None);
        }
        self.publish(&super::bus::Message::Broadcast {
            app: app.to_string(),
            channel: channel.to_string(),
            except: None,
            frame,
        })
        .await;
    }
}

/// The stored form of a member.
pub fn member_value(m: &Member) -> String {
    Value::Array(vec![
        Value::String(m.key.clone()),
        m.user_id.clone(),
        m.user_info.clone(),
    ])
    .to_string()
}

/// Parses stored member values and keeps one per member key (the first); values this code
/// did not write are skipped.
pub fn dedupe_members(vals: &[String]) -> Vec<Member> {
    let mut seen = HashSet::new();
    vals.iter()
        .filter_map(|v| parse_member_value(v))
        .filter(|m| seen.insert(m.key.clone()))
        .collect()
}

/// One stored member value, if it is one.
pub fn parse_member_value(v: &str) -> Option<Member> {
    let Ok(Value::Array(parts)) = serde_json::from_str::<Value>(v) else {
        return None;
    };
    match (parts.first(), parts.get(1)) {
        (Some(Value::String(key)), Some(id)) => Some(Member {
            key: key.clone(),
            user_id: id.clone(),
            user_info: parts.get(2).cloned().unwrap_or(Value::Null),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(key: &str, id: Value, info: Value) -> Member {
        Member {
            key: key.into(),
            user_id: id,
            user_info: info,
        }
    }

    #[test]
    fn values_round_trip() {
        let m = member("7", json!(7), json!({"name": "Ann"}));
        assert_eq!(parse_member_value(&member_value(&m)), Some(m));
    }

    #[test]
    fn one_member_per_key_first_value_wins_and_junk_is_skipped() {
        let a1 = member("a", json!("a"), json!({"tab": 1}));
        let a2 = member("a", json!("a"), json!({"tab": 2}));
        let b = member("b", json!("b"), Value::Null);
        let vals = vec![
            member_value(&a1),
            "not json".to_string(),
            "[1, 2]".to_string(),
            member_value(&a2),
            member_value(&b),
        ];
        assert_eq!(dedupe_members(&vals), vec![a1, b]);
    }

    #[test]
    fn a_value_without_user_info_reads_as_null() {
        assert_eq!(
            parse_member_value(r#"["k", "k"]"#),
            Some(member("k", json!("k"), Value::Null))
        );
    }
}
