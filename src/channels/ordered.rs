//! How each subscriber follows a channel's events, and in a cluster how an opted-in subscriber
//! follows the one numbering Redis gives a recorded channel (docs/recovery.md §3).
//!
//! In a cluster, the script that appends an event to history assigns its offset and publishes
//! it on the bus, so every node receives a recorded channel's events in offset order. An
//! opted-in subscriber keeps the last offset it was given (its floor) and takes only the next
//! one: an offset at or below the floor was already replayed and is dropped; a later one, or
//! another epoch, means this node missed events, and the connection is closed with 4200 so that
//! the client resubscribes from its position and recovers them from history. While its history
//! is being read, a subscriber's events wait in a bounded buffer and are released after its
//! replay, so nothing overtakes the replay and nothing falls between the read and the live
//! stream.

use std::sync::Mutex;

use super::handle::ConnHandle;
use super::namespace::Namespace;
use crate::protocol::codes::Fatal;
use crate::protocol::frames::Frame;
use crate::protocol::recovery::{self, Position};
use crate::protocol::socket_id::SocketId;

/// Most events held for one subscriber while its history is read; one more closes the
/// connection with 4200 (pusher-js reconnects at once and retries from the same position).
pub const WAITING_MAX: usize = 1000;

/// How a subscriber gets a channel's events.
#[derive(Debug)]
pub enum Follow {
    /// Plain Pusher frames: every subscriber that did not opt in.
    Plain,
    /// Stamped frames of a recorded channel whose history is this node's memory (one node:
    /// publishing and subscribing serialise on the history lock, no ordering to follow).
    Stamped,
    /// Stamped frames in the cluster's numbering (see the module comment).
    Ordered(Box<Mutex<Ordered>>),
}

impl Follow {
    /// An opted-in subscriber of a cluster's recorded channel whose history is being read.
    pub fn reading() -> Follow {
        Follow::Ordered(Box::new(Mutex::new(Ordered {
            state: State::Reading(Vec::new()),
        })))
    }
}

/// One opted-in subscriber's place in the cluster's numbering.
#[derive(Debug)]
pub struct Ordered {
    state: State,
}

#[derive(Debug)]
enum State {
    /// History is being read: events wait, in arrival order.
    Reading(Vec<Waiting>),
    /// Live after `floor`, in `epoch`.
    Live { epoch: String, floor: u64 },
    /// History could not be read: plain frames, as if the subscriber had not opted in.
    Unnumbered,
    /// Closed for a gap or an overflow; nothing more is sent.
    Closed,
}

#[derive(Debug)]
enum Waiting {
    /// A frame outside the numbering (a whisper, a presence change).
    Plain(Frame),
    /// A recorded event; `skip` when this subscriber was its excluded `socket_id`.
    Numbered {
        at: Position,
        frame: Frame,
        skip: bool,
    },
}

impl Ordered {
    /// A frame outside the numbering. Returns whether it was queued (or will be).
    pub fn pass(&mut self, handle: &ConnHandle, frame: Frame) -> bool {
        match self.state {
            State::Reading(_) => self.wait(handle, Waiting::Plain(frame)),
            State::Live { .. } | State::Unnumbered => handle.send(frame),
            State::Closed => false,
        }
    }

    /// A recorded event numbered `at`; `stamped` caches its stamped frame over subscribers.
    pub fn offer(
        &mut self,
        handle: &ConnHandle,
        at: &Position,
        plain: &Frame,
        stamped: &mut Option<Frame>,
        skip: bool,
    ) -> bool {
        match &mut self.state {
            State::Reading(_) => self.wait(
                handle,
                Waiting::Numbered {
                    at: at.clone(),
                    frame: plain.clone(),
                    skip,
                },
            ),
            State::Live { epoch, floor } => {
                if *epoch != at.epoch || at.offset > floor.saturating_add(1) {
                    self.close(handle);
                    return false;
                }
                if at.offset <= *floor {
                    return false;
                }
                *floor = at.offset;
                !skip
                    && handle.send(
                        stamped
                            .get_or_insert_with(|| recovery::stamp(plain, at))
                            .clone(),
                    )
            }
            State::Unnumbered => !skip && handle.send(plain.clone()),
            State::Closed => false,
        }
    }

    /// Ends the read: from `head` on (or unnumbered when no head is known), then releases what
    /// waited, under the same rules as live events.
    fn go_live(&mut self, handle: &ConnHandle, head: Option<&Position>) {
        let next = match head {
            Some(h) => State::Live {
                epoch: h.epoch.clone(),
                floor: h.offset,
            },
            None => State::Unnumbered,
        };
        let State::Reading(waiting) = std::mem::replace(&mut self.state, next) else {
            return;
        };
        for w in waiting {
            match w {
                Waiting::Plain(frame) => {
                    self.pass(handle, frame);
                }
                Waiting::Numbered { at, frame, skip } => {
                    self.offer(handle, &at, &frame, &mut None, skip);
                }
            }
        }
    }

    fn wait(&mut self, handle: &ConnHandle, w: Waiting) -> bool {
        let State::Reading(waiting) = &mut self.state else {
            return false;
        };
        if waiting.len() >= WAITING_MAX {
            self.close(handle);
            return false;
        }
        waiting.push(w);
        true
    }

    fn close(&mut self, handle: &ConnHandle) {
        self.state = State::Closed;
        handle.close(Fatal::RecoveryGap);
    }

    fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }
}

impl Namespace {
    /// Delivers a recorded event in the cluster's numbering: opted-in subscribers follow it (see
    /// the module comment), the others get `plain` unchanged. Returns how many got it.
    pub fn deliver_numbered(
        &self,
        channel: &str,
        plain: &Frame,
        at: &Position,
        except: Option<SocketId>,
    ) -> usize {
        let Some(ch) = self.channels.get(channel) else {
            return 0;
        };
        let mut stamped = None;
        let mut sent = 0;
        for (id, sub) in ch.subscribers.iter() {
            let skip = Some(*id) == except;
            let queued = match &sub.follow {
                Follow::Ordered(o) => {
                    crate::sync::lock(o).offer(&sub.handle, at, plain, &mut stamped, skip)
                }
                Follow::Stamped => {
                    let s = stamped.get_or_insert_with(|| recovery::stamp(plain, at));
                    !skip && sub.handle.send(s.clone())
                }
                Follow::Plain => !skip && sub.handle.send(plain.clone()),
            };
            if queued {
                sent += 1;
            }
        }
        sent
    }

    /// Ends an opted-in subscribe in a cluster: queues `announce` (the stamped
    /// `subscription_succeeded`, the replay, the marker) and releases the events that waited,
    /// all under the channel's lock so that nothing comes between them. False when the
    /// subscriber has gone (or was closed) in the meantime.
    pub fn go_live(
        &self,
        channel: &str,
        socket_id: SocketId,
        announce: Vec<Frame>,
        head: Option<&Position>,
    ) -> bool {
        let Some(ch) = self.channels.get(channel) else {
            return false;
        };
        let Some(sub) = ch.subscribers.get(&socket_id) else {
            return false;
        };
        let Follow::Ordered(o) = &sub.follow else {
            return false;
        };
        let mut o = crate::sync::lock(o);
        if o.is_closed() {
            return false;
        }
        for frame in announce {
            sub.handle.send(frame);
        }
        o.go_live(&sub.handle, head);
        true
    }

    /// Closes every subscriber that follows the cluster's numbering (with 4200): used when the
    /// bus may have lost messages (its subscription was re-established), so that each client
    /// resubscribes from its position and recovers what it missed.
    pub fn close_numbered(&self) -> usize {
        let mut closed = 0;
        for ch in self.channels.iter() {
            for sub in ch.subscribers.values() {
                if let Follow::Ordered(o) = &sub.follow {
                    let mut o = crate::sync::lock(o);
                    if !o.is_closed() {
                        o.close(&sub.handle);
                        closed += 1;
                    }
                }
            }
        }
        closed
    }
}

#[cfg(test)]
#[path = "ordered_tests.rs"]
mod tests;
