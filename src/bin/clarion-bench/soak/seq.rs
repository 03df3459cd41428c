//! Sequence checking for one receiver on one channel: every event the soak publishes carries
//! the channel's next number, so a receiver can tell a lost event (a gap), a duplicate and one
//! that came out of order without keeping what it received.
//!
//! A receiver that subscribes while a channel is busy cannot know which of the events already
//! in flight it will get. What it can know is the number of the last publish *begun* when its
//! subscription was confirmed: every later event must reach it (`from`). Earlier ones may or may
//! not arrive, and are only checked for order. When it leaves (or the run ends) it reads on until
//! it has the last number whose publish was *answered* (`finish`): anything up to there that
//! never came is lost.

use std::collections::BTreeSet;

/// Gaps remembered one by one (to tell a late event from a duplicate); beyond this, a gap is
/// only counted, and a late event from it would read as a duplicate.
const MAX_MISSING: usize = 10_000;

/// What one received number meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The next one, or an early one before `from` (not required, in order).
    InOrder,
    /// This many required numbers were skipped over (lost unless they come late).
    Gap(u64),
    /// A number counted missing arrived after a later one: no longer lost, out of order.
    Late,
    /// A number already received (or at or below the last one and never missing).
    Duplicate,
    /// `--skip-every` made the receiver pretend it never saw this one.
    Skipped,
}

/// One receiver's view of one channel's numbers.
#[derive(Debug)]
pub struct Tracker {
    from: u64,
    last: Option<u64>,
    missing: BTreeSet<u64>,
    /// Gaps past `MAX_MISSING` and the tail found by `finish`.
    lost_uncounted: u64,
    pub received: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    skip_every: u64,
    seen: u64,
    /// Required numbers dropped on purpose (`--skip-every`): with nothing really lost, the lost
    /// count must equal this exactly.
    pub skipped: u64,
}

impl Tracker {
    /// A receiver that must get every number from `from` on; with `skip_every` > 0 it pretends
    /// to miss every `skip_every`-th message (a self-check of the loss count).
    pub fn new(from: u64, skip_every: u64) -> Tracker {
        Tracker {
            from: from.max(1),
            last: None,
            missing: BTreeSet::new(),
            lost_uncounted: 0,
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            skip_every,
            seen: 0,
            skipped: 0,
        }
    }

    /// The first number that must arrive.
    pub fn from(&self) -> u64 {
        self.from
    }

    /// The highest number received so far.
    pub fn last(&self) -> Option<u64> {
        self.last
    }

    /// Events lost so far.
    pub fn lost(&self) -> u64 {
        self.missing.len() as u64 + self.lost_uncounted
    }

    /// Records number `s`.
    pub fn seq(&mut self, s: u64) -> Seen {
        self.seen += 1;
        if self.skip_every > 0 && self.seen.is_multiple_of(self.skip_every) {
            if s >= self.from {
                self.skipped += 1;
            }
            return Seen::Skipped;
        }
        self.received += 1;
        match self.last {
            Some(l) if s <= l => {
                if self.missing.remove(&s) {
                    self.out_of_order += 1;
                    Seen::Late
                } else {
                    self.duplicated += 1;
                    Seen::Duplicate
                }
            }
            last => {
                let lo = last.map_or(self.from, |l| (l + 1).max(self.from));
                self.last = Some(s);
                self.gap(lo, s)
            }
        }
    }

    /// Numbers `lo..s` did not come.
    fn gap(&mut self, lo: u64, s: u64) -> Seen {
        if s <= lo {
            return Seen::InOrder;
        }
        for m in lo..s {
            if self.missing.len() < MAX_MISSING {
                self.missing.insert(m);
            } else {
                self.lost_uncounted += 1;
            }
        }
        Seen::Gap(s - lo)
    }

    /// The receiver stops, having read on until it had `to` (the last publish answered) or
    /// given up: the required numbers after the last one received are lost. Returns how many.
    pub fn finish(&mut self, to: u64) -> u64 {
        let lo = self.last.map_or(self.from, |l| (l + 1).max(self.from));
        let tail = (to + 1).saturating_sub(lo);
        self.lost_uncounted += tail;
        tail
    }
}

/// The sequence number in an event frame: the publisher writes `{"seq":N,…}` as the event's
/// data, which arrives inside a JSON string for triggered events (`{\"seq\":N`) and as an object
/// for client events. A scan, because parsing every frame would take CPU from the server.
pub fn extract_seq(frame: &[u8]) -> Option<u64> {
    crate::target::number_after(frame, br#"\"seq\":"#, br#""seq":"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(t: &mut Tracker, seqs: &[u64]) -> Vec<Seen> {
        seqs.iter().map(|&s| t.seq(s)).collect()
    }

    #[test]
    fn an_unbroken_run_loses_nothing() {
        let mut t = Tracker::new(1, 0);
        assert!(feed(&mut t, &[1, 2, 3, 4])
            .iter()
            .all(|s| *s == Seen::InOrder));
        assert_eq!(t.finish(4), 0);
        assert_eq!((t.lost(), t.duplicated, t.out_of_order), (0, 0, 0));
        assert_eq!(t.received, 4);
    }

    #[test]
    fn gaps_count_as_lost_and_a_late_arrival_turns_into_out_of_order() {
        let mut t = Tracker::new(1, 0);
        assert_eq!(feed(&mut t, &[1, 4]), vec![Seen::InOrder, Seen::Gap(2)]);
        assert_eq!(t.lost(), 2);
        assert_eq!(t.seq(3), Seen::Late);
        assert_eq!(t.seq(3), Seen::Duplicate);
        assert_eq!(t.seq(4), Seen::Duplicate);
        assert_eq!((t.lost(), t.out_of_order, t.duplicated), (1, 1, 2));
    }

    #[test]
    fn events_before_the_subscription_are_optional_but_later_ones_are_not() {
        // Subscribed while number 10 was being published: 10 may come or not, 11 on must.
        let mut t = Tracker::new(11, 0);
        assert_eq!(feed(&mut t, &[9, 10, 11]), vec![Seen::InOrder; 3]);
        assert_eq!(t.lost(), 0);
        // Nothing early, and 11 missing: the first one received shows the gap.
        let mut t = Tracker::new(11, 0);
        assert_eq!(t.seq(13), Seen::Gap(2));
        assert_eq!(t.lost(), 2);
    }

    #[test]
    fn the_tail_not_received_by_the_end_is_lost() {
        let mut t = Tracker::new(1, 0);
        feed(&mut t, &[1, 2]);
        assert_eq!(t.finish(5), 3);
        assert_eq!(t.lost(), 3);
        // A receiver that got nothing at all lost everything required.
        let mut t = Tracker::new(3, 0);
        assert_eq!(t.finish(7), 5);
        // Nothing required (the channel was quiet since the subscription).
        let mut t = Tracker::new(8, 0);
        assert_eq!(t.finish(7), 0);
    }

    #[test]
    fn skip_every_makes_the_loss_count_match_the_skips_exactly() {
        let mut t = Tracker::new(1, 3);
        for s in 1..=10 {
            t.seq(s);
        }
        t.finish(10);
        // 3, 6 and 9 were "missed".
        assert_eq!(t.skipped, 3);
        assert_eq!(t.lost(), 3);
        // A skipped last message is caught by `finish`.
        let mut t = Tracker::new(1, 2);
        t.seq(1);
        t.seq(2);
        assert_eq!(t.finish(2), 1);
        assert_eq!((t.skipped, t.lost()), (1, 1));
    }

    #[test]
    fn finds_the_number_in_both_encodings() {
        let triggered = br#"{"event":"soak","channel":"c","data":"{\"seq\":42,\"pad\":\"x\"}"}"#;
        assert_eq!(extract_seq(triggered), Some(42));
        let client = br#"{"event":"client-soak","channel":"private-c","data":{"seq":7}}"#;
        assert_eq!(extract_seq(client), Some(7));
        assert_eq!(extract_seq(br#"{"event":"pusher:ping","data":{}}"#), None);
    }
}
