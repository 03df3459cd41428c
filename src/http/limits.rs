//! Per-app rate limits of the HTTP API (per node): backend events per second and read requests
//! per second, each a one-second window. Over a limit the API answers 429.

use std::sync::Mutex;
use std::time::Instant;

use dashmap::DashMap;
use hyper::StatusCode;

use super::response::ApiError;
use crate::app::App;
use crate::rate_limit::RateLimiter;
use crate::state::State;

#[derive(Default)]
pub struct ApiLimits {
    events: DashMap<String, Mutex<RateLimiter>>,
    reads: DashMap<String, Mutex<RateLimiter>>,
}

impl ApiLimits {
    /// Takes `n` backend events from the app's budget, or says why not.
    pub fn events(&self, state: &State, app: &App, n: u32) -> Result<(), ApiError> {
        take(
            &self.events,
            state,
            app,
            app.max_backend_events_per_second,
            n,
            "backend events",
        )
    }

    /// Takes one read request from the app's budget, or says why not.
    pub fn read(&self, state: &State, app: &App) -> Result<(), ApiError> {
        take(
            &self.reads,
            state,
            app,
            app.max_read_requests_per_second,
            1,
            "read requests",
        )
    }
}

fn take(
    map: &DashMap<String, Mutex<RateLimiter>>,
    state: &State,
    app: &App,
    limit: u32,
    n: u32,
    what: &str,
) -> Result<(), ApiError> {
    if limit == 0 {
        return Ok(());
    }
    let allowed = {
        let entry = map
            .entry(app.id.clone())
            .or_insert_with(|| Mutex::new(RateLimiter::per_second(limit)));
        let mut limiter = match entry.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // A reload may have changed the limit.
        if limiter.limit() != limit {
            *limiter = RateLimiter::per_second(limit);
        }
        limiter.allow_n(Instant::now(), n)
    };
    if allowed {
        return Ok(());
    }
    state
        .metrics
        .rate_limit_rejections
        .with_label_values(&[&app.id])
        .inc();
    Err(ApiError(
        StatusCode::TOO_MANY_REQUESTS,
        format!("Rate limit exceeded: the app allows {limit} {what} per second"),
    ))
}
