//! Recorded channels on one node (memory history): publishing appends and delivers, and an
//! opted-in subscribe joins, replays and marks, each under the channel's history lock. So on
//! one node nothing can slip between the history read and the live stream: the replay ends
//! exactly where live delivery begins, with no buffer and no duplicate (docs/recovery.md §3).
//!
//! Lock order: the history lock, then the channel's shard lock (inside `subscribe_with` and
//! `broadcast_recorded`); nothing takes them the other way round, and nothing here awaits.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::handle::ConnHandle;
use super::history::{History, Page};
use super::namespace::{Follow, Namespace, SubscribeError, Subscribed};
use crate::app::Recording;
use crate::protocol::frames::{self, Frame};
use crate::protocol::presence::Member;
use crate::protocol::recovery::{self, Position, Request};
use crate::protocol::socket_id::SocketId;

impl Namespace {
    fn history_of(&self, channel: &str, rec: &Recording) -> Arc<Mutex<History>> {
        if let Some(h) = self.history.get(channel) {
            return h.clone();
        }
        let ttl = Duration::from_secs(rec.history_ttl);
        self.history
            .entry(channel.to_string())
            .or_insert_with(|| {
                let budget = self.budget.clone();
                Arc::new(Mutex::new(History::new(Instant::now(), ttl, budget)))
            })
            .clone()
    }

    /// Records an event on a recorded channel and delivers it: history assigns the offset,
    /// opted-in subscribers get the stamped frame, the others `frame` unchanged.
    pub fn publish_recorded(
        &self,
        channel: &str,
        frame: &Frame,
        except: Option<SocketId>,
        rec: &Recording,
    ) -> Position {
        let now = Instant::now();
        let ttl = Duration::from_secs(rec.history_ttl);
        let history = self.history_of(channel, rec);
        let mut h = crate::sync::lock(&history);
        h.expire(now, ttl);
        let (at, stamped) = h.append(frame, except, now, rec.history_size, ttl);
        self.broadcast_recorded(channel, frame, &stamped, except);
        at
    }

    /// A page of the channel's history for the HTTP API. Reading creates the history when there
    /// is none, so the epoch it returns is the one the next publish numbers in.
    pub fn history_page(
        &self,
        channel: &str,
        epoch: Option<&str>,
        after: u64,
        limit: usize,
        rec: &Recording,
    ) -> Page {
        let history = self.history_of(channel, rec);
        let mut h = crate::sync::lock(&history);
        h.expire(Instant::now(), Duration::from_secs(rec.history_ttl));
        h.page(epoch, after, limit)
    }

    /// Bytes of every recorded channel's held frames.
    pub fn history_bytes(&self) -> usize {
        self.history
            .iter()
            .map(|h| crate::sync::lock(h.value()).bytes())
            .sum()
    }

    /// Forgets the channel's history: the next publish starts a new epoch, so every position
    /// of the old one gets `epoch_changed`.
    pub fn purge_history(&self, channel: &str) {
        self.history.remove(channel);
    }

    /// Every recorded channel with when it was last published to and the bytes it holds (for
    /// evicting the least recently published when the node is over `max_history_memory`).
    pub fn history_ages(&self) -> Vec<(Instant, String, usize)> {
        self.history
            .iter()
            .map(|h| {
                let h2 = crate::sync::lock(h.value());
                (h2.last_publish(), h.key().clone(), h2.bytes())
            })
            .collect()
    }

    /// Subscribes an opted-in connection to a recorded channel and queues, in this order, the
    /// stamped `subscription_succeeded`, the missed events (when `request` names a position and
    /// all of them are held) and the `clarion:recovery` marker (when a position was named).
    /// A repeated subscribe of the same connection changes nothing and queues nothing.
    pub fn subscribe_recovering(
        &self,
        channel: &str,
        conn: &ConnHandle,
        member: Option<Member>,
        max_members: u64,
        request: &Request,
        rec: &Recording,
    ) -> Result<Subscribed, SubscribeError> {
        let now = Instant::now();
        let history = self.history_of(channel, rec);
        let mut h = crate::sync::lock(&history);
        h.expire(now, Duration::from_secs(rec.history_ttl));
        let mut subscribed =
            self.subscribe_with(channel, conn, member, max_members, Follow::Stamped)?;
        if !subscribed.added {
            return Ok(subscribed);
        }
        let head = h.head();
        let succeeded = match &subscribed.presence {
            Some(roster) => {
                frames::presence_succeeded(channel, roster.ids.clone(), roster.hash.clone())
            }
            None => frames::subscription_succeeded(channel),
        };
        conn.send(recovery::stamp(&succeeded, &head));
        if let Some(from) = &request.from {
            let outcome: Result<usize, recovery::Failure> =
                recovery::decide(from, &h.held(), rec.max_replay).map(|()| {
                    let mut replayed = 0;
                    for entry in h.after(from.offset) {
                        if entry.except.is_some() && entry.except == request.prev_socket_id {
                            continue;
                        }
                        conn.send(entry.frame.clone());
                        replayed += 1;
                    }
                    replayed
                });
            conn.send(recovery::marker(channel, outcome, Some(&head)));
            subscribed.recovery = Some(outcome);
        }
        subscribed.announced = true;
        Ok(subscribed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::handle::Receiver;
    use serde_json::Value;

    fn rec(size: usize, max_replay: usize) -> Recording {
        Recording {
            channels: vec!["private-*".into()],
            history_size: size,
            max_replay,
            ..Recording::default()
        }
    }

    fn conn(n: u64) -> (ConnHandle, Receiver) {
        ConnHandle::new(SocketId(n, n), 100)
    }

    fn drain(rx: &Receiver) -> Vec<Value> {
        std::iter::from_fn(|| rx.try_recv())
            .map(|f| serde_json::from_str(f.as_str()).expect("json"))
            .collect()
    }

    fn event(n: u64) -> Frame {
        frames::envelope("e", Some("private-a"), Some(&format!("\"{n}\"")), None)
    }

    #[test]
    fn a_resubscribe_replays_exactly_what_was_missed_then_marks_it() {
        let ns = Namespace::default();
        let r = rec(100, 100);
        let (plain, plain_rx) = conn(1);
        ns.subscribe("private-a", &plain, None, 0).expect("plain");
        let mut last = None;
        for n in 1..=5 {
            last = Some(ns.publish_recorded("private-a", &event(n), None, &r));
        }
        // Plain subscribers see byte-identical Pusher frames.
        let got = drain(&plain_rx);
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|m| m.get("clarion").is_none()));

        let at3 = Position {
            epoch: last.expect("published").epoch,
            offset: 3,
        };
        let (c, rx) = conn(2);
        let request = Request {
            from: Some(at3.clone()),
            prev_socket_id: None,
        };
        let s = ns
            .subscribe_recovering("private-a", &c, None, 0, &request, &r)
            .expect("joins");
        assert!(s.announced);
        let got = drain(&rx);
        let events: Vec<&str> = got
            .iter()
            .map(|m| m["event"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            events,
            [
                "pusher_internal:subscription_succeeded",
                "e",
                "e",
                "clarion:recovery"
            ]
        );
        assert_eq!(got[0]["clarion"]["offset"], 5);
        assert_eq!(got[1]["clarion"]["offset"], 4);
        assert_eq!(got[2]["clarion"]["offset"], 5);
        assert_eq!(got[3]["data"], r#"{"recovered":true,"replayed":2}"#);
        // Live events follow, stamped, once.
        ns.publish_recorded("private-a", &event(6), None, &r);
        let got = drain(&rx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["clarion"]["offset"], 6);
    }

    #[test]
    fn excluded_events_stay_excluded_and_a_lost_position_is_a_failure_not_a_gap() {
        let ns = Namespace::default();
        let r = rec(3, 3);
        let sender = SocketId(7, 7);
        let first = ns.publish_recorded("private-a", &event(1), None, &r);
        ns.publish_recorded("private-a", &event(2), Some(sender), &r);
        ns.publish_recorded("private-a", &event(3), None, &r);
        let from = |offset| Request {
            from: Some(Position {
                epoch: first.epoch.clone(),
                offset,
            }),
            prev_socket_id: Some(sender),
        };
        let (c, rx) = conn(2);
        ns.subscribe_recovering("private-a", &c, None, 0, &from(1), &r)
            .expect("joins");
        let got = drain(&rx);
        assert_eq!(
            got.len(),
            3,
            "succeeded, event 3 (2 was the sender's own), marker"
        );
        assert_eq!(got[1]["data"], "3");
        assert_eq!(got[2]["data"], r#"{"recovered":true,"replayed":1}"#);

        // Two more events push offset 2 out of a ring of 3: from 1 is too far behind.
        ns.publish_recorded("private-a", &event(4), None, &r);
        ns.publish_recorded("private-a", &event(5), None, &r);
        let (late, late_rx) = conn(3);
        ns.subscribe_recovering("private-a", &late, None, 0, &from(1), &r)
            .expect("joins");
        let got = drain(&late_rx);
        assert_eq!(
            got.len(),
            2,
            "succeeded and marker, no partial replay: {got:?}"
        );
        assert_eq!(
            got[1]["data"],
            r#"{"reason":"too_far_behind","recovered":false}"#
        );
        assert_eq!(got[1]["clarion"]["offset"], 5, "continue from the head");
    }
}
