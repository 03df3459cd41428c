//! Whether Redis is reachable, with logging that says so once per change (and a reminder at
//! most every 30 s), never once per failed message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const REMINDER: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Health {
    healthy: AtomicBool,
    last_log: Mutex<Option<Instant>>,
    recovered_at: Mutex<Option<Instant>>,
    errors: std::sync::atomic::AtomicU64,
}

impl Health {
    pub fn new() -> Health {
        Health {
            healthy: AtomicBool::new(false),
            last_log: Mutex::new(None),
            recovered_at: Mutex::new(None),
            errors: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records a successful exchange with Redis; true when Redis was unreachable before.
    pub fn ok(&self) -> bool {
        let recovered = !self.healthy.swap(true, Ordering::Relaxed);
        if recovered {
            tracing::info!("redis reachable: cross-node delivery and shared state active");
            let mut at = crate::sync::lock(&self.recovered_at);
            *at = Some(Instant::now());
        }
        recovered
    }

    /// Whether this node (re)gained Redis within `window`. Right after an outage the other
    /// nodes' liveness keys may have expired while they are alive and still reconnecting, so
    /// nobody is declared dead during that time.
    pub fn recovered_within(&self, window: Duration) -> bool {
        let at = *crate::sync::lock(&self.recovered_at);
        at.is_some_and(|t| t.elapsed() < window)
    }

    /// Records a failure; logs on the transition and then at most every 30 s.
    /// Failed calls so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn fail(&self, what: &str, error: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let was_healthy = self.healthy.swap(false, Ordering::Relaxed);
        let mut last = crate::sync::lock(&self.last_log);
        let due = last.is_none_or(|t| t.elapsed() >= REMINDER);
        if was_healthy || due {
            *last = Some(Instant::now());
            tracing::error!(
                %error,
                during = what,
                "redis unreachable: serving local subscribers only, retrying in the background"
            );
        }
    }
}
