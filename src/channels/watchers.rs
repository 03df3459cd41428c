//! Who watches whom among one app's connections on this node (docs/protocol.md §10.1): each
//! signed-in connection's fixed watchlist, indexed by the watched user so that a transition
//! reaches its watchers without scanning every connection.
//!
//! A connection's statuses frame must come before any transition it is sent: a transition that
//! overtook it would be undone by statuses read before it (an online user shown offline). From
//! registration until the statuses are queued (`release`), transitions for the connection are
//! held, then queued after them, in order.

use dashmap::DashMap;

use crate::protocol::frames::Frame;
use crate::protocol::socket_id::SocketId;

#[derive(Debug)]
struct Watching {
    ids: Box<[String]>,
    /// Transitions waiting for the statuses frame; `None` once it was queued.
    held: Option<Vec<Frame>>,
}

#[derive(Debug, Default)]
pub struct Watchers {
    /// Watched user → the connections watching them.
    by_user: DashMap<String, Vec<SocketId>>,
    /// Connection → its watchlist, to take it out of `by_user` when it closes.
    by_socket: DashMap<SocketId, Watching>,
}

impl Watchers {
    /// Registers `socket`'s watchlist; false (and nothing changes) when it already has one: a
    /// watchlist is fixed for the connection.
    pub fn watch(&self, socket: SocketId, ids: &[String]) -> bool {
        match self.by_socket.entry(socket) {
            dashmap::mapref::entry::Entry::Occupied(_) => return false,
            dashmap::mapref::entry::Entry::Vacant(v) => {
                v.insert(Watching {
                    ids: ids.into(),
                    held: Some(Vec::new()),
                });
            }
        }
        for id in ids {
            self.by_user.entry(id.clone()).or_default().push(socket);
        }
        true
    }

    /// Forgets `socket`'s watchlist. Idempotent.
    pub fn unwatch(&self, socket: SocketId) {
        let Some((_, watching)) = self.by_socket.remove(&socket) else {
            return;
        };
        for id in watching.ids.iter() {
            if let Some(mut sockets) = self.by_user.get_mut(id) {
                sockets.retain(|s| *s != socket);
            }
            self.by_user.remove_if(id, |_, s| s.is_empty());
        }
    }

    /// The connections watching `user`.
    pub fn of(&self, user: &str) -> Vec<SocketId> {
        self.by_user
            .get(user)
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Hands `frame` (a transition) to `send` for `socket`, or holds it while the socket's
    /// statuses are not queued yet.
    pub fn offer(&self, socket: SocketId, frame: &Frame, send: impl FnOnce(Frame)) {
        let Some(mut watching) = self.by_socket.get_mut(&socket) else {
            return;
        };
        match &mut watching.held {
            Some(held) => held.push(frame.clone()),
            None => send(frame.clone()),
        }
    }

    /// The statuses of `socket` are queued: hands the held transitions to `send`, in order,
    /// and sends later ones at once. Under the entry's lock, so none overtakes another.
    pub fn release(&self, socket: SocketId, mut send: impl FnMut(Frame)) {
        let Some(mut watching) = self.by_socket.get_mut(&socket) else {
            return;
        };
        for frame in watching.held.take().unwrap_or_default() {
            send(frame);
        }
    }

    /// How many connections have a watchlist.
    pub fn len(&self) -> usize {
        self.by_socket.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watchlist_is_fixed_and_forgotten_on_close() {
        let w = Watchers::default();
        let (a, b) = (SocketId(1, 1), SocketId(1, 2));
        assert!(w.watch(a, &["2".into(), "3".into()]));
        assert!(w.watch(b, &["3".into()]));
        assert!(!w.watch(a, &["4".into()]), "a second watchlist is refused");
        assert!(w.of("4").is_empty());
        assert_eq!(w.of("3"), [a, b]);
        w.unwatch(a);
        w.unwatch(a);
        assert_eq!(w.of("3"), [b]);
        assert!(w.of("2").is_empty());
        assert_eq!(w.len(), 1);
        w.unwatch(b);
        assert!(w.by_user.is_empty(), "no empty entries are left behind");
    }

    #[test]
    fn transitions_wait_for_the_statuses() {
        let w = Watchers::default();
        let a = SocketId(1, 1);
        assert!(w.watch(a, &["2".into()]));
        let sent = std::sync::Mutex::new(Vec::new());
        let frame = |n: &str| Frame::from(n.to_string());
        w.offer(a, &frame("online"), |f| sent.lock().expect("lock").push(f));
        assert!(
            sent.lock().expect("lock").is_empty(),
            "held before the statuses"
        );
        w.release(a, |f| sent.lock().expect("lock").push(f));
        w.offer(a, &frame("offline"), |f| sent.lock().expect("lock").push(f));
        let sent = sent.into_inner().expect("lock");
        assert_eq!(sent, [frame("online"), frame("offline")]);
    }
}
