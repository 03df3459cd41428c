//! The memory history of one recorded channel on one node: a ring of the last events, each with
//! its offset, the frame as opted-in subscribers get it (stamped) and the socket it excluded.
//!
//! The epoch is new whenever this history starts, so a position from before a restart, or from
//! a history that was swept away, never matches (docs/recovery.md §3).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::protocol::frames::Frame;
use crate::protocol::recovery::{self, Held, Position};
use crate::protocol::socket_id::SocketId;

/// One recorded event.
#[derive(Debug)]
pub struct Entry {
    pub offset: u64,
    /// The frame with its `clarion` stamp.
    pub frame: Frame,
    /// The connection the publish excluded (`socket_id`, Laravel's `toOthers()`).
    pub except: Option<SocketId>,
    /// When it was published, in Unix milliseconds (for the HTTP history).
    pub time_ms: u64,
}

/// What one entry costs besides its frame's bytes: its slot in the ring and the shared header
/// the frame's buffer gets once it is cloned to a subscriber. Counted so that
/// `max_history_memory` and the `history_bytes` gauge track memory, not only payloads.
const ENTRY_COST: usize = std::mem::size_of::<Entry>() + 32;

/// What `frame` costs while held.
fn cost(frame: &Frame) -> usize {
    frame.len() + ENTRY_COST
}

/// A page of history for the HTTP API (`GET …/history`).
#[derive(Debug)]
pub struct Page {
    pub epoch: String,
    /// The head offset.
    pub top: u64,
    /// Whether `items` hold every event after the requested offset up to `top`, in the
    /// requested epoch (false: some are gone, another epoch, or the page was cut at `limit`).
    pub complete: bool,
    pub items: Vec<PageItem>,
}

/// One event of a page: its offset, stamped frame and time.
#[derive(Debug)]
pub struct PageItem {
    pub offset: u64,
    pub frame: Frame,
    pub time_ms: u64,
}

/// The bytes every memory history of this node holds together, against `max_history_memory`
/// (0: no limit). Each history keeps its share up to date, and gives it back when dropped.
#[derive(Debug, Default)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether the histories hold more than the limit.
    pub fn over(&self) -> bool {
        self.limit != 0 && self.used() > self.limit
    }

    /// How much to free to get back under nine tenths of the limit: evicting a little more
    /// than needed means the eviction scan runs once per tenth of the limit published, not on
    /// every publish at the limit.
    pub fn excess(&self) -> usize {
        self.used().saturating_sub(self.limit / 10 * 9)
    }

    fn change(&self, from: usize, to: usize) {
        if to > from {
            self.used.fetch_add(to - from, Ordering::Relaxed);
        } else {
            self.used.fetch_sub(from - to, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
pub struct History {
    epoch: String,
    head: u64,
    entries: VecDeque<Entry>,
    last_publish: Instant,
    /// The channel's `history_ttl`, for sweeping.
    ttl: Duration,
    /// Whether entries were dropped because they aged out.
    aged_out: bool,
    /// What the held entries cost (`cost`; for the `history_bytes` gauge and the budget).
    bytes: usize,
    budget: Arc<Budget>,
}

impl Drop for History {
    fn drop(&mut self) {
        self.budget.change(self.bytes, 0);
    }
}

impl History {
    /// A new history with a new epoch; `ttl` is the channel's `history_ttl` (the sweeper keeps
    /// even an empty history for twice that, so that a position read over the HTTP API stays
    /// the one the next publish numbers after).
    pub fn new(now: Instant, ttl: Duration, budget: Arc<Budget>) -> History {
        History {
            epoch: recovery::new_epoch(),
            head: 0,
            entries: VecDeque::new(),
            last_publish: now,
            ttl,
            aged_out: false,
            bytes: 0,
            budget,
        }
    }

    /// Sets the held bytes, and the budget's share with them.
    fn set_bytes(&mut self, bytes: usize) {
        self.budget.change(self.bytes, bytes);
        self.bytes = bytes;
    }

    /// When the last event was published (or the history started).
    pub fn last_publish(&self) -> Instant {
        self.last_publish
    }

    /// Drops every entry when the channel's last event is older than `ttl` (`history_ttl`:
    /// the window runs from the last publish). The epoch and head stay, so a client of this
    /// history learns that its events expired rather than that history changed.
    pub fn expire(&mut self, now: Instant, ttl: Duration) {
        if !self.entries.is_empty() && now.saturating_duration_since(self.last_publish) > ttl {
            self.entries.clear();
            self.aged_out = true;
            self.set_bytes(0);
        }
    }

    /// Appends an event: assigns the next offset, stamps the frame, keeps at most `size`.
    /// Returns the position and the stamped frame.
    pub fn append(
        &mut self,
        frame: &Frame,
        except: Option<SocketId>,
        now: Instant,
        size: usize,
        ttl: Duration,
    ) -> (Position, Frame) {
        self.head += 1;
        let at = Position {
            epoch: self.epoch.clone(),
            offset: self.head,
        };
        let stamped = recovery::stamp(frame, &at);
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut bytes = self.bytes + cost(&stamped);
        // Grow by doubling, but never past `size`: the ring is full for most of its life.
        let size = size.max(1);
        let (len, capacity) = (self.entries.len(), self.entries.capacity());
        if len == capacity && capacity < size {
            self.entries
                .reserve_exact(capacity.max(4).min(size.saturating_sub(len)).max(1));
        }
        self.entries.push_back(Entry {
            offset: self.head,
            frame: stamped.clone(),
            except,
            time_ms,
        });
        while self.entries.len() > size {
            if let Some(dropped) = self.entries.pop_front() {
                bytes = bytes.saturating_sub(cost(&dropped.frame));
            }
        }
        self.set_bytes(bytes);
        self.last_publish = now;
        self.ttl = ttl;
        (at, stamped)
    }

    /// Where the history stands.
    pub fn held(&self) -> Held {
        Held {
            epoch: self.epoch.clone(),
            head: self.head,
            oldest: self.entries.front().map(|e| e.offset),
            aged_out: self.aged_out,
        }
    }

    /// Bytes of the held frames.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The head as a position.
    pub fn head(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.head,
        }
    }

    /// The entries after `offset`, oldest first.
    pub fn after(&self, offset: u64) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.offset > offset)
    }

    /// At most `limit` events after `after`, for the HTTP API; `epoch`, when given, must be this
    /// history's for any event to be listed.
    pub fn page(&self, epoch: Option<&str>, after: u64, limit: usize) -> Page {
        let same = epoch.is_none_or(|e| e == self.epoch);
        let items: Vec<PageItem> = if same {
            self.after(after)
                .take(limit)
                .map(|e| PageItem {
                    offset: e.offset,
                    frame: e.frame.clone(),
                    time_ms: e.time_ms,
                })
                .collect()
        } else {
            Vec::new()
        };
        let last = items.last().map(|i| i.offset);
        Page {
            epoch: self.epoch.clone(),
            top: self.head,
            complete: page_complete(&self.held(), same, after, last),
            items,
        }
    }

    /// Whether nothing would be lost by forgetting this history: it has aged out twice over
    /// (a client within one more window still learns `expired`, not `epoch_changed`).
    pub fn forgettable(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_publish) > self.ttl.saturating_mul(2)
    }
}

/// Whether a page of history after `after` whose last item is `last` lists every event up to
/// the head of `held`: same epoch as asked (`same_epoch`), the first needed event still held,
/// the last one reached. One rule for memory and Redis history.
pub fn page_complete(held: &Held, same_epoch: bool, after: u64, last: Option<u64>) -> bool {
    let at_head = after >= held.head;
    let reaches_top = at_head || last == Some(held.head);
    let starts_right = at_head || held.oldest.is_some_and(|o| o <= after.saturating_add(1));
    same_epoch && after <= held.head && reaches_top && starts_right
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::recovery::{decide, Failure};

    const TTL: Duration = Duration::from_secs(600);

    fn publish(h: &mut History, n: u64, now: Instant, size: usize) {
        for i in 0..n {
            h.append(&Frame::from(format!("{{\"e\":{i}}}")), None, now, size, TTL);
        }
    }

    #[test]
    fn offsets_count_up_and_the_ring_keeps_the_last_events() {
        let t0 = Instant::now();
        let mut h = History::new(t0, TTL, Arc::default());
        publish(&mut h, 5, t0, 3);
        let held = h.held();
        assert_eq!((held.head, held.oldest), (5, Some(3)));
        let after: Vec<u64> = h.after(3).map(|e| e.offset).collect();
        assert_eq!(after, [4, 5]);
        let first = h.after(0).next().expect("an entry");
        assert!(first.frame.as_str().contains("\"clarion\":{\"epoch\":"));
        // From 2, offset 3 is needed and held; from 1, offset 2 is gone.
        let at = |offset| Position {
            epoch: held.epoch.clone(),
            offset,
        };
        assert_eq!(decide(&at(2), &held, 100), Ok(()));
        assert_eq!(decide(&at(1), &held, 100), Err(Failure::TooFarBehind));
    }

    #[test]
    fn a_quiet_channel_expires_but_keeps_its_epoch() {
        let t0 = Instant::now();
        let mut h = History::new(t0, TTL, Arc::default());
        publish(&mut h, 2, t0, 10);
        let epoch = h.held().epoch;
        h.expire(t0 + TTL + Duration::from_secs(1), TTL);
        let held = h.held();
        assert_eq!(
            (held.epoch.as_str(), held.head, held.oldest),
            (epoch.as_str(), 2, None)
        );
        let from = Position { epoch, offset: 1 };
        assert_eq!(decide(&from, &held, 100), Err(Failure::Expired));
        assert!(!h.forgettable(t0 + TTL));
        assert!(h.forgettable(t0 + TTL * 3));
    }

    #[test]
    fn pages_say_whether_they_hold_everything_up_to_the_top() {
        let t0 = Instant::now();
        let mut h = History::new(t0, TTL, Arc::default());
        publish(&mut h, 5, t0, 3);
        let epoch = h.held().epoch;
        let full = h.page(Some(&epoch), 2, 100);
        assert_eq!((full.top, full.items.len(), full.complete), (5, 3, true));
        let cut = h.page(None, 2, 2);
        assert_eq!((cut.items.len(), cut.complete), (2, false));
        let gone = h.page(None, 1, 100);
        assert!(!gone.complete, "offset 2 is no longer held");
        let other = h.page(Some("another"), 0, 100);
        assert!(other.items.is_empty() && !other.complete);
        let head_only = h.page(Some(&epoch), 5, 0);
        assert!(head_only.items.is_empty() && head_only.complete);
    }

    #[test]
    fn every_history_has_its_own_epoch() {
        let t0 = Instant::now();
        assert_ne!(
            History::new(t0, TTL, Arc::default()).held().epoch,
            History::new(t0, TTL, Arc::default()).held().epoch
        );
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn histories_keep_the_shared_budget_up_to_date_and_give_it_back() {
        let budget = Arc::new(Budget::new(1000));
        let t0 = Instant::now();
        let ttl = Duration::from_secs(600);
        let mut a = History::new(t0, ttl, budget.clone());
        let mut b = History::new(t0, ttl, budget.clone());
        let frame = Frame::from(format!("{{\"data\":\"{}\"}}", "x".repeat(300)));
        a.append(&frame, None, t0, 10, ttl);
        b.append(&frame, None, t0, 10, ttl);
        assert_eq!(budget.used(), a.bytes() + b.bytes());
        assert!(!budget.over());
        a.append(&frame, None, t0, 10, ttl);
        assert!(budget.over(), "{} of 1000", budget.used());
        assert_eq!(budget.excess(), budget.used() - 900);
        // The ring drops the oldest: one event's worth stays.
        b.append(&frame, None, t0, 1, ttl);
        assert_eq!(budget.used(), a.bytes() + b.bytes());
        b.expire(t0 + ttl * 2, ttl);
        assert_eq!(budget.used(), a.bytes());
        drop(a);
        assert_eq!(budget.used(), 0);
        assert!(!Budget::new(0).over(), "0: no limit");
    }
}
