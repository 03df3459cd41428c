//! How often a channel is broadcast to: whether its sends may be the sender's own socket
//! writes (`direct_writes`) or should go to the connection tasks.
//!
//! Why: on a channel broadcast to many times a second its subscribers' tasks are woken often
//! anyway, batch what arrives while they are scheduled, and share the writes over every
//! worker; sender writes there run one after another on the broadcaster's thread. The
//! per-connection rule alone ("not written to in the last 5 ms", `handle.rs`) misjudged such
//! a channel on a loaded machine: a channel at 500 events/s had gaps of more than 5 ms often
//! enough that a fifth of its deliveries became sender writes, and its p99 doubled
//! (docs/performance.md). A moving average of the gaps does not flip on one late broadcast.
//!
//! One atomic word per channel, read and written without a lock: two broadcasts racing on a
//! channel may lose one gap from the average, which only makes the estimate a little late.

use std::sync::atomic::{AtomicU64, Ordering};

/// A channel whose mean gap between broadcasts is shorter than this is busy: its sends are
/// queued for the connection tasks. 50 broadcasts a second and more; the 10k-subscriber
/// channel at 10 a second and a user's own channel stay quiet.
const BUSY_BELOW_MS: u32 = 20;
/// A gap counts at most this much, so a busy channel back from a pause is busy again after
/// a handful of quick broadcasts rather than dozens.
const GAP_CAP_MS: u32 = 250;

/// The last broadcast's time (coarse milliseconds, high half) and the mean gap before it (low
/// half).
#[derive(Debug)]
pub(super) struct Pace(AtomicU64);

impl Default for Pace {
    /// Never broadcast to: quiet.
    fn default() -> Pace {
        Pace(AtomicU64::new(u64::from(GAP_CAP_MS)))
    }
}

impl Pace {
    /// Records a broadcast at `now` (`direct::coarse_ms`); true when the channel is quiet, so
    /// this broadcast's sends may be socket writes.
    pub(super) fn broadcast(&self, now: u32) -> bool {
        let old = self.0.load(Ordering::Relaxed);
        let (last, mean) = ((old >> 32) as u32, old as u32);
        let gap = now.wrapping_sub(last).min(GAP_CAP_MS);
        // An average over about the last four gaps; both terms are at most GAP_CAP_MS.
        let mean = (mean.min(GAP_CAP_MS) * 3 + gap) / 4;
        self.0
            .store((u64::from(now) << 32) | u64::from(mean), Ordering::Relaxed);
        mean >= BUSY_BELOW_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_channel_is_quiet_and_a_steady_fast_one_becomes_busy() {
        let pace = Pace::default();
        let mut t = 5_000u32;
        assert!(pace.broadcast(t), "first broadcast: quiet");
        let mut quiet = 0;
        for _ in 0..50 {
            t += 2; // 500 broadcasts a second
            quiet += usize::from(pace.broadcast(t));
        }
        assert!(quiet < 12, "busy after a handful, {quiet} quiet");
        assert!(!pace.broadcast(t + 2));
    }

    #[test]
    fn one_late_broadcast_does_not_make_a_busy_channel_quiet() {
        let pace = Pace::default();
        let mut t = 0u32;
        for _ in 0..100 {
            t += 2;
            pace.broadcast(t);
        }
        t += 30; // a 30 ms gap: a stalled publisher, a loaded machine
        assert!(!pace.broadcast(t), "still busy");
        t += 2;
        assert!(!pace.broadcast(t));
    }

    #[test]
    fn a_channel_at_ten_a_second_stays_quiet_and_a_pause_makes_any_channel_quiet() {
        let pace = Pace::default();
        let mut t = u32::MAX - 150; // across the clock's wrap
        for _ in 0..20 {
            t = t.wrapping_add(100);
            assert!(pace.broadcast(t), "10 a second: quiet");
        }
        for _ in 0..50 {
            t = t.wrapping_add(2);
            pace.broadcast(t);
        }
        assert!(!pace.broadcast(t.wrapping_add(2)), "busy");
        assert!(pace.broadcast(t.wrapping_add(10_000)), "after 10 s: quiet");
    }
}
