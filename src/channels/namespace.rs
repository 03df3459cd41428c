//! The local state of one app on one node.
//!
//! Each map is a `DashMap` (sharded locks) and every operation takes one shard lock for a short,
//! synchronous critical section: nothing here awaits, so no lock is ever held across I/O.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use dashmap::DashMap;
use serde_json::{Map, Value};

use super::cache::CachedEvent;
use super::direct::{coarse_ms, CountSent, Tally};
use super::history::{Budget, History};
pub use super::ordered::Follow;
use super::pace::Pace;
use super::spread::{spread, Delivery};
use super::watchers::Watchers;
use crate::channels::handle::ConnHandle;
use crate::protocol::codes::Fatal;
use crate::protocol::frames::Frame;
use crate::protocol::presence::{self, Member};
use crate::protocol::recovery::Failure;
use crate::protocol::socket_id::SocketId;

/// What a subscribe changed.
#[derive(Debug, Default)]
pub struct Subscribed {
    /// The connection was not subscribed before (a repeated subscribe changes nothing).
    pub added: bool,
    /// This connection is the channel's first subscriber (channel_occupied).
    pub occupied: bool,
    /// This is the user's first connection on the presence channel (member_added).
    pub member_added: bool,
    /// Presence channels: every member, the subscriber included.
    pub presence: Option<Roster>,
    /// Subscriptions to the channel after this one.
    pub subscription_count: usize,
    /// Orders `subscription_count` among the channel's changes (later changes have higher
    /// numbers), so that a count overtaken by a newer one is not shown (0: not numbered).
    pub count_version: u64,
    /// The `subscription_succeeded` (and a recovery's replay and marker) is already queued,
    /// in order with the channel's events; the caller must not send another.
    pub announced: bool,
    /// A recovery from a position: how many events were replayed, or why none.
    pub recovery: Option<Result<usize, Failure>>,
}

/// A presence channel's members as `pusher_internal:subscription_succeeded` lists them.
#[derive(Debug, Default, PartialEq)]
pub struct Roster {
    /// Every member's `user_id`.
    pub ids: Vec<Value>,
    /// Member key → `user_info`.
    pub hash: Map<String, Value>,
}

/// A presence subscription of this node, as a cluster adapter re-asserts it.
#[derive(Debug, PartialEq)]
pub struct LocalMember {
    pub channel: String,
    pub socket_id: SocketId,
    pub member: Member,
}

/// Why a subscribe was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SubscribeError {
    /// The presence channel already has `limit` distinct users.
    ChannelFull { limit: u64 },
}

/// What an unsubscribe changed.
#[derive(Debug, Default)]
pub struct Unsubscribed {
    /// The connection was subscribed (so something changed at all).
    pub was_subscribed: bool,
    /// The channel has no subscribers left (channel_vacated).
    pub vacated: bool,
    /// Subscriptions left on the channel.
    pub subscription_count: usize,
    /// As in `Subscribed`.
    pub count_version: u64,
    /// The user's last connection left the presence channel (member_removed).
    pub member_removed: Option<Value>,
    /// Presence: the leaving subscriber's member key and `user_id`, whether or not it was the
    /// user's last connection here (a cluster adapter decides cluster-wide).
    pub member: Option<(String, Value)>,
}

/// Counts for one channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    pub subscription_count: usize,
    pub user_count: usize,
}

/// A member present on the channel, with how many of the user's connections are subscribed.
#[derive(Debug)]
struct Present {
    user_id: Value,
    user_info: Value,
    connections: u32,
}

/// Subscribers a broadcast sends to while it holds the channel map's lock; above this, the
/// sends that may be socket writes (`direct_writes`) happen after letting go (see `fan_out`).
const SEND_UNDER_LOCK_UP_TO: usize = 64;

#[derive(Debug)]
pub(super) struct Subscriber {
    pub(super) handle: ConnHandle,
    member_key: Option<String>,
    /// Plain frames, or stamped ones for an opted-in subscription of a recorded channel.
    pub(super) follow: Follow,
    /// A send to this connection may be a socket write (`ConnHandle::writes_direct`), kept
    /// here because the fan-out loop reads this entry anyway.
    direct: bool,
}

#[derive(Debug, Default)]
pub(super) struct Channel {
    pub(super) subscribers: HashMap<SocketId, Subscriber>,
    members: HashMap<String, Present>,
    /// How often it is broadcast to: a busy channel's sends go to the connection tasks,
    /// a quiet one's may be socket writes (`pace.rs`).
    pace: Pace,
}

impl Channel {
    /// Records a broadcast at `now` (`coarse_ms`): whether its sends may be socket writes,
    /// and whether those happen after the lock is let go (a quiet channel of more than
    /// `SEND_UNDER_LOCK_UP_TO` subscribers).
    pub(super) fn broadcast(&self, now: u32) -> (bool, bool) {
        let quiet = self.pace.broadcast(now);
        (
            quiet,
            quiet && self.subscribers.len() > SEND_UNDER_LOCK_UP_TO,
        )
    }
}

/// One app's connections, channels, signed-in users and cache on this node.
#[derive(Debug, Default)]
pub struct Namespace {
    pub(super) connections: DashMap<SocketId, ConnHandle>,
    connection_count: AtomicU64,
    /// Connections that have not authorized themselves yet (`authorized_connections_timeout`):
    /// closable like the others, but not counted toward `max_connections`.
    pending: DashMap<SocketId, ConnHandle>,
    /// Numbers subscription changes on this node (`Subscribed::count_version`).
    count_seq: AtomicU64,
    pub(super) channels: DashMap<String, Channel>,
    /// Signed-in user id → its connections here (`signins`).
    pub(super) users: DashMap<String, Vec<SocketId>>,
    /// Signed-in connections' watchlists (`signins`).
    pub(super) watchers: Watchers,
    cache: DashMap<String, CachedEvent>,
    /// Recorded channels' memory history (see `recorded`).
    pub(super) history: DashMap<String, Arc<Mutex<History>>>,
    /// The node's budget for memory history, shared by every app's namespace.
    pub(super) budget: Arc<Budget>,
    /// The app's count of frames senders wrote themselves, shared by its connections.
    count_sent: OnceLock<Arc<CountSent>>,
}

impl Namespace {
    /// An empty namespace whose memory history counts against `budget`.
    pub fn with_budget(budget: Arc<Budget>) -> Namespace {
        Namespace {
            budget,
            ..Namespace::default()
        }
    }

    /// The app's counter for frames senders write themselves (`direct.rs`), made by `make` the
    /// first time: one for all its connections rather than one each.
    pub fn count_sent(&self, make: impl FnOnce() -> CountSent) -> Arc<CountSent> {
        self.count_sent.get_or_init(|| Arc::new(make())).clone()
    }

    /// Registers a connection unless that would exceed `max` (0 = unlimited).
    pub fn add_connection(&self, conn: ConnHandle, max: u64) -> bool {
        let n = self.connection_count.fetch_add(1, Ordering::SeqCst) + 1;
        if max != 0 && n > max {
            self.connection_count.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        self.connections.insert(conn.socket_id, conn);
        true
    }

    /// Holds a connection that does not count yet (docs/protocol.md §10.3).
    pub fn add_pending(&self, conn: ConnHandle) {
        self.pending.insert(conn.socket_id, conn);
    }

    /// Forgets a connection that was not counted; true when it was pending.
    pub fn remove_pending(&self, socket_id: SocketId) -> bool {
        self.pending.remove(&socket_id).is_some()
    }

    /// Connections not authorized yet.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Forgets a connection, its sign-in and its watchlist; with `announce`, a user whose last
    /// connection here this was goes offline for this node's watchers. Idempotent.
    pub fn remove_connection(&self, socket_id: SocketId, user_id: Option<&str>, announce: bool) {
        self.watchers.unwatch(socket_id);
        if self.connections.remove(&socket_id).is_some() {
            self.connection_count.fetch_sub(1, Ordering::SeqCst);
        }
        if let Some(user) = user_id {
            self.remove_user(user, socket_id, announce);
        }
    }

    /// Channels with at least one subscriber.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Frames waiting in the outbound queues of this app's connections (authorized or not),
    /// walked now: see `ConnHandle::queued`.
    pub fn queued_frames(&self) -> usize {
        let open = self.connections.iter().map(|c| c.value().queued());
        let pending = self.pending.iter().map(|c| c.value().queued());
        open.chain(pending).sum()
    }

    /// Presence members over all channels.
    pub fn member_count(&self) -> usize {
        self.channels.iter().map(|c| c.members.len()).sum()
    }

    pub fn connection_count(&self) -> u64 {
        self.connection_count.load(Ordering::SeqCst)
    }

    /// Adds a subscriber (and, for presence, a member).
    pub fn subscribe(
        &self,
        channel: &str,
        conn: &ConnHandle,
        member: Option<Member>,
        max_members: u64,
    ) -> Result<Subscribed, SubscribeError> {
        self.subscribe_with(channel, conn, member, max_members, Follow::Plain)
    }

    /// `subscribe`, for a subscriber that gets plain or stamped frames (`follow`).
    pub fn subscribe_with(
        &self,
        channel: &str,
        conn: &ConnHandle,
        member: Option<Member>,
        max_members: u64,
        follow: Follow,
    ) -> Result<Subscribed, SubscribeError> {
        let result = {
            let mut entry = self.channels.entry(channel.to_string()).or_default();
            let ch = entry.value_mut();
            let mut result = subscribe_in(ch, conn, member, max_members, follow);
            if let Ok(s) = &mut result {
                // Numbered under the channel's lock: the order of the numbers is the order of
                // the counts.
                s.count_version = self.count_seq.fetch_add(1, Ordering::Relaxed) + 1;
            }
            result
        };
        if result.is_err() {
            self.channels
                .remove_if(channel, |_, c| c.subscribers.is_empty());
        }
        result
    }

    /// Removes a subscriber; reports vacancy and the presence member leaving.
    pub fn unsubscribe(&self, channel: &str, socket_id: SocketId) -> Unsubscribed {
        let mut out = Unsubscribed::default();
        if let Some(mut ch) = self.channels.get_mut(channel) {
            if let Some(sub) = ch.subscribers.remove(&socket_id) {
                out.was_subscribed = true;
                if let Some(key) = sub.member_key {
                    let gone = match ch.members.get_mut(&key) {
                        Some(m) => {
                            m.connections = m.connections.saturating_sub(1);
                            out.member = Some((key.clone(), m.user_id.clone()));
                            presence::announces_member_removed(u64::from(m.connections))
                        }
                        None => false,
                    };
                    if gone {
                        out.member_removed = ch.members.remove(&key).map(|m| m.user_id);
                    }
                }
                out.vacated = ch.subscribers.is_empty();
                out.subscription_count = ch.subscribers.len();
                out.count_version = self.count_seq.fetch_add(1, Ordering::Relaxed) + 1;
            }
        }
        if out.vacated {
            self.channels
                .remove_if(channel, |_, c| c.subscribers.is_empty());
        }
        out
    }

    /// Queues `frame` for every subscriber except `except`. Returns how many got it.
    pub fn broadcast(&self, channel: &str, frame: &Frame, except: Option<SocketId>) -> usize {
        self.fan_out(channel, except, |_| frame)
    }

    /// `broadcast` on a recorded channel: opted-in subscribers get `stamped`, the others
    /// `plain`, byte for byte what they would get without recording.
    pub(super) fn broadcast_recorded(
        &self,
        channel: &str,
        plain: &Frame,
        stamped: &Frame,
        except: Option<SocketId>,
    ) -> usize {
        self.fan_out(channel, except, |sub| match sub.follow {
            Follow::Stamped => stamped,
            _ => plain,
        })
    }

    /// The one fan-out loop: queues `pick(subscriber)` for every subscriber but `except`.
    /// Generic, so the plain broadcast compiles to the loop it always was.
    fn fan_out<'f>(
        &self,
        channel: &str,
        except: Option<SocketId>,
        pick: impl Fn(&Subscriber) -> &'f Frame,
    ) -> usize {
        let Some(ch) = self.channels.get(channel) else {
            return 0;
        };
        let mut sent = 0;
        // A send to an idle socket may be a write (`direct_writes`, `handle.rs`): on a large
        // channel those happen after the channel map's lock is let go, so subscribing to the
        // channels that share its shard never waits for thousands of system calls, and they
        // are spread over the cores (`spread.rs`). Without `direct_writes` the list stays empty;
        // on a busy channel (`pace.rs`) nothing is written by the sender at all.
        let (quiet, defer) = ch.broadcast(coarse_ms());
        let mut later: Vec<Delivery> = Vec::new();
        // The distinct frames of `later` (one, or two on a recorded channel).
        let mut frames: Vec<&Frame> = Vec::new();
        let mut tally = Tally::default();
        for (id, sub) in ch.subscribers.iter() {
            if Some(*id) == except {
                continue;
            }
            let frame = pick(sub);
            let queued = match &sub.follow {
                // A frame outside the cluster's numbering (a whisper, a presence change) waits
                // behind a recovering subscriber's replay like everything else.
                Follow::Ordered(o) => crate::sync::lock(o).pass(&sub.handle, frame.clone()),
                _ if defer && sub.direct => {
                    if later.is_empty() {
                        later.reserve(ch.subscribers.len());
                    }
                    let i = match frames.iter().position(|f| std::ptr::eq(*f, frame)) {
                        Some(i) => i,
                        None => {
                            frames.push(frame);
                            frames.len() - 1
                        }
                    };
                    later.push((sub.handle.clone(), i as u32));
                    continue;
                }
                _ if quiet => sub.handle.send_shared(frame, &mut tally),
                _ => sub.handle.send_queued(frame),
            };
            if queued {
                sent += 1;
            }
        }
        drop(ch);
        sent + spread(later, &frames)
    }

    /// Counts for a channel (zeros when nobody is subscribed).
    pub fn channel_stats(&self, channel: &str) -> ChannelStats {
        self.channels
            .get(channel)
            .map(|c| stats(&c))
            .unwrap_or_default()
    }

    /// Every occupied channel with its counts.
    pub fn channels(&self) -> Vec<(String, ChannelStats)> {
        self.channels
            .iter()
            .filter(|c| !c.subscribers.is_empty())
            .map(|c| (c.key().clone(), stats(c.value())))
            .collect()
    }

    /// The distinct user ids on a presence channel.
    pub fn presence_users(&self, channel: &str) -> Vec<Value> {
        self.channels
            .get(channel)
            .map(|c| c.members.values().map(|m| m.user_id.clone()).collect())
            .unwrap_or_default()
    }

    /// Stores the last event of a cache channel.
    pub fn set_cache(&self, channel: &str, event: CachedEvent) {
        self.cache.insert(channel.to_string(), event);
    }

    /// The cached event of a cache channel, if it has not expired.
    pub fn get_cache(&self, channel: &str) -> Option<CachedEvent> {
        let now = Instant::now();
        let hit = self.cache.get(channel).map(|e| e.clone());
        match hit {
            Some(e) if e.ttl_left(now).is_some() => Some(e),
            Some(_) => {
                self.cache
                    .remove_if(channel, |_, e| e.ttl_left(now).is_none());
                None
            }
            None => None,
        }
    }

    /// Drops expired cache entries so that memory does not hold events nobody will read.
    pub fn sweep_cache(&self) {
        let now = Instant::now();
        self.cache.retain(|_, e| e.ttl_left(now).is_some());
        self.history
            .retain(|_, h| !crate::sync::lock(h).forgettable(now));
    }

    /// Subscriptions per channel on this node (for a cluster adapter's shared counts).
    pub fn local_counts(&self) -> Vec<(String, usize)> {
        self.channels
            .iter()
            .filter(|c| !c.subscribers.is_empty())
            .map(|c| (c.key().clone(), c.subscribers.len()))
            .collect()
    }

    /// Every presence subscription on this node (for a cluster adapter to re-assert its
    /// members).
    pub fn local_members(&self) -> Vec<LocalMember> {
        let mut out = Vec::new();
        for c in self.channels.iter() {
            for (sid, sub) in &c.subscribers {
                if let Some(key) = &sub.member_key {
                    if let Some(m) = c.members.get(key) {
                        out.push(LocalMember {
                            channel: c.key().clone(),
                            socket_id: *sid,
                            member: Member {
                                key: key.clone(),
                                user_id: m.user_id.clone(),
                                user_info: m.user_info.clone(),
                            },
                        });
                    }
                }
            }
        }
        out
    }

    /// Closes every connection (used when a node loses its cluster for good, and by tests).
    pub fn close_all(&self, why: Fatal) {
        for c in self.connections.iter().chain(self.pending.iter()) {
            c.close(why);
        }
    }

    /// Whether nothing at all is held for the app (used to drop empty namespaces).
    pub fn is_idle(&self) -> bool {
        self.connection_count() == 0
            && self.pending.is_empty()
            && self.channels.is_empty()
            && self.cache.is_empty()
            && self.history.is_empty()
    }
}

fn stats(c: &Channel) -> ChannelStats {
    ChannelStats {
        subscription_count: c.subscribers.len(),
        user_count: c.members.len(),
    }
}

fn subscribe_in(
    ch: &mut Channel,
    conn: &ConnHandle,
    member: Option<Member>,
    max_members: u64,
    follow: Follow,
) -> Result<Subscribed, SubscribeError> {
    let mut out = Subscribed {
        occupied: ch.subscribers.is_empty(),
        ..Subscribed::default()
    };
    let already = ch.subscribers.contains_key(&conn.socket_id);
    out.added = !already;
    if let Some(m) = &member {
        let known = ch.members.contains_key(&m.key);
        if !already && !known && max_members != 0 && ch.members.len() as u64 >= max_members {
            return Err(SubscribeError::ChannelFull { limit: max_members });
        }
    }
    if !already {
        let member_key = member.as_ref().map(|m| m.key.clone());
        ch.subscribers.insert(
            conn.socket_id,
            Subscriber {
                handle: conn.clone(),
                member_key,
                follow,
                direct: conn.writes_direct(),
            },
        );
        if let Some(m) = member.as_ref() {
            let entry = ch.members.entry(m.key.clone()).or_insert_with(|| Present {
                user_id: m.user_id.clone(),
                user_info: m.user_info.clone(),
                connections: 0,
            });
            entry.connections += 1;
            out.member_added = presence::announces_member_added(true, u64::from(entry.connections));
        }
    }
    out.subscription_count = ch.subscribers.len();
    if member.is_some() {
        let mut roster = Roster {
            ids: Vec::with_capacity(ch.members.len()),
            hash: Map::new(),
        };
        for (key, m) in &ch.members {
            roster.ids.push(m.user_id.clone());
            roster.hash.insert(key.clone(), m.user_info.clone());
        }
        out.presence = Some(roster);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "namespace_tests.rs"]
mod tests;
