//! Every rate limit in one place, all fixed one-second windows (what Pusher documents):
//!
//! | limit | type | scope |
//! |---|---|---|
//! | `max_client_events_per_second` | [`window::RateLimiter`] | one connection |
//! | `new_connections_per_ip_per_second` | [`per_ip::ConnectionRateLimit`] | one client address |
//! | `max_backend_events_per_second`, `max_read_requests_per_second` | [`api::ApiLimits`] | one app's HTTP API, per node |

pub mod api;
pub mod per_ip;
pub mod window;
