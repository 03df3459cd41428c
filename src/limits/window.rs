//! A per-connection fixed-window counter: at most `limit` actions per second.
//!
//! A fixed one-second window is what Pusher documents ("10 messages per second") and costs two
//! integers per connection.

use std::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window_start: Option<Instant>,
    used: u32,
}

impl RateLimiter {
    /// `limit` actions per second; 0 means unlimited.
    pub fn per_second(limit: u32) -> RateLimiter {
        RateLimiter {
            limit,
            window_start: None,
            used: 0,
        }
    }

    /// The configured limit per second.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one action at `now`; false when the window's budget is spent.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.allow_n(now, 1)
    }

    /// Counts `n` actions at once (all or none).
    pub fn allow_n(&mut self, now: Instant, n: u32) -> bool {
        if self.limit == 0 {
            return true;
        }
        match self.window_start {
            Some(start) if now.duration_since(start).as_secs_f64() < 1.0 => {}
            _ => {
                self.window_start = Some(now);
                self.used = 0;
            }
        }
        if self.used.saturating_add(n) <= self.limit {
            self.used += n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_limit_per_window() {
        let t0 = Instant::now();
        let mut r = RateLimiter::per_second(2);
        assert!(r.allow(t0));
        assert!(r.allow(t0));
        assert!(!r.allow(t0 + Duration::from_millis(500)));
        assert!(r.allow(t0 + Duration::from_millis(1001)));
        let mut u = RateLimiter::per_second(0);
        assert!((0..1000).all(|_| u.allow(t0)));
    }
}
