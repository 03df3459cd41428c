//! Cache channels keep their last event for 30 minutes and replay it to new subscribers.

use std::time::{Duration, Instant};

use crate::protocol::frames::Frame;

/// How long a cache channel's last event is kept (Pusher's documented maximum).
pub const CACHE_TTL: Duration = Duration::from_secs(30 * 60);

/// The last event triggered on a cache channel.
#[derive(Clone, Debug)]
pub struct CachedEvent {
    /// The frame as subscribers receive it, ready to send.
    pub frame: Frame,
    /// The event's `data` as raw JSON text, for `info=cache`.
    pub data: String,
    pub stored_at: Instant,
}

impl CachedEvent {
    pub fn new(frame: Frame, data: String) -> CachedEvent {
        CachedEvent {
            frame,
            data,
            stored_at: Instant::now(),
        }
    }

    /// Seconds left before the event expires, or None when it already has.
    pub fn ttl_left(&self, now: Instant) -> Option<u64> {
        let age = now.saturating_duration_since(self.stored_at);
        CACHE_TTL
            .checked_sub(age)
            .filter(|d| !d.is_zero())
            .map(|d| d.as_secs().max(1))
    }
}
