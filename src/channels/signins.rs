//! Signed-in users on one app's namespace: who is signed in here (for `#server-to-user-{id}`,
//! `terminate_connections` and being online), and telling watchers when a user comes and goes
//! (docs/protocol.md §10.1).
//!
//! A transition is announced while the user's entry is held, so two sign-ins or sign-outs of
//! one user racing each other reach the watchers in the order they happened. Lock order: the
//! user's entry, then the watchers index, then a connection's outbox.

use dashmap::mapref::entry::Entry;

use super::namespace::Namespace;
use crate::protocol::codes::Fatal;
use crate::protocol::socket_id::SocketId;
use crate::protocol::watchlist;

impl Namespace {
    /// Records that `socket_id` signed in as `user_id`; true when it is the user's first
    /// connection here. With `announce`, that first connection also tells this node's watchers
    /// the user is online (a cluster announces over its bus instead).
    pub fn add_user(&self, user_id: &str, socket_id: SocketId, announce: bool) -> bool {
        let mut sockets = self.users.entry(user_id.to_string()).or_default();
        if sockets.contains(&socket_id) {
            return false;
        }
        sockets.push(socket_id);
        let first = sockets.len() == 1;
        if first && announce {
            self.notify_watchers(user_id, true);
        }
        first
    }

    /// Forgets that `socket_id` is signed in as `user_id`; true when that was the user's last
    /// connection here (announced as `offline` with `announce`). Idempotent.
    pub fn remove_user(&self, user_id: &str, socket_id: SocketId, announce: bool) -> bool {
        let Entry::Occupied(mut sockets) = self.users.entry(user_id.to_string()) else {
            return false;
        };
        let before = sockets.get().len();
        sockets.get_mut().retain(|s| *s != socket_id);
        if !sockets.get().is_empty() {
            return false;
        }
        if announce && before > 0 {
            self.notify_watchers(user_id, false);
        }
        sockets.remove();
        true
    }

    /// Whether `user_id` has a signed-in connection here.
    pub fn is_signed_in(&self, user_id: &str) -> bool {
        self.users.contains_key(user_id)
    }

    /// Every user signed in here with their number of connections (re-asserted to a cluster).
    pub fn local_users(&self) -> Vec<(String, usize)> {
        self.users
            .iter()
            .map(|e| (e.key().clone(), e.value().len()))
            .collect()
    }

    /// Registers a signed-in connection's watchlist; false when it already has one.
    pub fn watch(&self, socket_id: SocketId, ids: &[String]) -> bool {
        self.watchers.watch(socket_id, ids)
    }

    /// Connections here that have a watchlist.
    pub fn watching_connections(&self) -> usize {
        self.watchers.len()
    }

    /// Tells every connection here that watches `user_id` that it went online or offline.
    pub fn notify_watchers(&self, user_id: &str, online: bool) {
        let watching = self.watchers.of(user_id);
        if watching.is_empty() {
            return;
        }
        let frame = watchlist::transition(user_id, online);
        for socket in watching {
            if let Some(conn) = self.connections.get(&socket) {
                self.watchers.offer(socket, &frame, |f| {
                    conn.send(f);
                });
            }
        }
    }

    /// `socket_id`'s statuses frame is queued: the transitions held meanwhile follow it.
    pub fn watchlist_sent(&self, socket_id: SocketId) {
        if let Some(conn) = self.connections.get(&socket_id) {
            self.watchers.release(socket_id, |f| {
                conn.send(f);
            });
        }
    }

    /// Closes every connection signed in as `user_id` (`terminate_connections`).
    pub fn terminate_user(&self, user_id: &str) -> usize {
        let sockets: Vec<SocketId> = self
            .users
            .get(user_id)
            .map(|s| s.clone())
            .unwrap_or_default();
        let mut closed = 0;
        for sid in sockets {
            if let Some(conn) = self.connections.get(&sid) {
                conn.close(Fatal::TerminatedByApp);
                closed += 1;
            }
        }
        closed
    }
}
