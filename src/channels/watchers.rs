//! Who watches whom among one app's connections on this node (docs/protocol.md §10.1): each
//! signed-in connection's fixed watchlist, indexed by the watched user so that a transition
//! reaches its watchers without scanning every connection.

use dashmap::DashMap;

use crate::protocol::socket_id::SocketId;

#[derive(Debug, Default)]
pub struct Watchers {
    /// Watched user → the connections watching them.
    by_user: DashMap<String, Vec<SocketId>>,
    /// Connection → its watchlist, to take it out of `by_user` when it closes.
    by_socket: DashMap<SocketId, Box<[String]>>,
}

impl Watchers {
    /// Registers `socket`'s watchlist; false (and nothing changes) when it already has one: a
    /// watchlist is fixed for the connection.
    pub fn watch(&self, socket: SocketId, ids: &[String]) -> bool {
        match self.by_socket.entry(socket) {
            dashmap::mapref::entry::Entry::Occupied(_) => return false,
            dashmap::mapref::entry::Entry::Vacant(v) => {
                v.insert(ids.into());
            }
        }
        for id in ids {
            self.by_user.entry(id.clone()).or_default().push(socket);
        }
        true
    }

    /// Forgets `socket`'s watchlist. Idempotent.
    pub fn unwatch(&self, socket: SocketId) {
        let Some((_, ids)) = self.by_socket.remove(&socket) else {
            return;
        };
        for id in ids.iter() {
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
}
