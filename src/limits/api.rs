//! Per-app rate limits of the HTTP API (per node): backend events per second and read requests
//! per second, each a one-second window. The caller turns a refusal into 429 and counts it.

use std::sync::Mutex;
use std::time::Instant;

use dashmap::DashMap;

use super::window::RateLimiter;
use crate::app::App;

/// The two budgets of every app.
#[derive(Default)]
pub struct ApiLimits {
    events: DashMap<String, Mutex<RateLimiter>>,
    reads: DashMap<String, Mutex<RateLimiter>>,
}

/// A request refused by a rate limit: the limit per second and what it counts.
#[derive(Debug, PartialEq, Eq)]
pub struct Limited {
    pub limit: u32,
    pub what: &'static str,
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Rate limit exceeded: the app allows {} {} per second",
            self.limit, self.what
        )
    }
}

impl ApiLimits {
    /// Takes `n` backend events from the app's budget (all or none), or says why not.
    pub fn events(&self, app: &App, n: u32, now: Instant) -> Result<(), Limited> {
        take(
            &self.events,
            app,
            app.max_backend_events_per_second,
            n,
            "backend events",
            now,
        )
    }

    /// Takes one read request from the app's budget, or says why not.
    pub fn read(&self, app: &App, now: Instant) -> Result<(), Limited> {
        take(
            &self.reads,
            app,
            app.max_read_requests_per_second,
            1,
            "read requests",
            now,
        )
    }
}

fn take(
    map: &DashMap<String, Mutex<RateLimiter>>,
    app: &App,
    limit: u32,
    n: u32,
    what: &'static str,
    now: Instant,
) -> Result<(), Limited> {
    if limit == 0 {
        return Ok(());
    }
    let entry = map
        .entry(app.id.clone())
        .or_insert_with(|| Mutex::new(RateLimiter::per_second(limit)));
    let mut limiter = crate::sync::lock(&entry);
    // A reload may have changed the limit.
    if limiter.limit() != limit {
        *limiter = RateLimiter::per_second(limit);
    }
    if limiter.allow_n(now, n) {
        Ok(())
    } else {
        Err(Limited { limit, what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn app(events: u32, reads: u32) -> App {
        App {
            id: "1".into(),
            max_backend_events_per_second: events,
            max_read_requests_per_second: reads,
            ..App::default()
        }
    }

    #[test]
    fn a_batch_takes_its_size_from_the_event_budget_all_or_nothing() {
        let limits = ApiLimits::default();
        let a = app(10, 0);
        let t0 = Instant::now();
        assert_eq!(limits.events(&a, 8, t0), Ok(()));
        let refused = limits.events(&a, 3, t0).expect_err("8 + 3 > 10");
        assert_eq!(refused.limit, 10);
        assert_eq!(
            refused.to_string(),
            "Rate limit exceeded: the app allows 10 backend events per second"
        );
        // Nothing was taken by the refused batch: two more still fit.
        assert_eq!(limits.events(&a, 2, t0), Ok(()));
        assert!(limits.events(&a, 1, t0).is_err());
        // The next window starts afresh; reads are unlimited (0).
        assert_eq!(limits.events(&a, 10, t0 + Duration::from_secs(1)), Ok(()));
        assert!((0..1000).all(|_| limits.read(&a, t0).is_ok()));
    }

    #[test]
    fn apps_have_their_own_budgets_and_a_reload_applies_a_new_limit() {
        let limits = ApiLimits::default();
        let t0 = Instant::now();
        assert_eq!(limits.read(&app(0, 1), t0), Ok(()));
        assert!(limits.read(&app(0, 1), t0).is_err());
        let other = App {
            id: "2".into(),
            ..app(0, 1)
        };
        assert_eq!(limits.read(&other, t0), Ok(()));
        // The same app reloaded with a higher limit gets a fresh window at that limit.
        assert_eq!(limits.read(&app(0, 3), t0), Ok(()));
        assert_eq!(limits.read(&app(0, 3), t0), Ok(()));
        assert!(limits.read(&app(0, 3), t0).is_ok());
        assert_eq!(
            limits.read(&app(0, 3), t0),
            Err(Limited {
                limit: 3,
                what: "read requests"
            })
        );
    }
}
