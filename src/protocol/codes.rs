//! Error and close codes, chosen from one table so that pusher-js reconnects (or not) as intended.
//!
//! pusher-js treats 4000–4099 and ≥4300 close codes as "refused" (no reconnect), 4100–4199 as
//! "back off", 4200–4299 as "reconnect now". 43xx codes are therefore only ever sent as
//! non-fatal `pusher:error` messages, never as close codes.

/// Unknown app key.
pub const APP_NOT_FOUND: u16 = 4001;
/// App disabled in the configuration.
pub const APP_DISABLED: u16 = 4003;
/// App over its connection quota.
pub const OVER_QUOTA: u16 = 4004;
/// Unsupported `protocol` query parameter.
pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
/// Connection unauthorized: user sign-in required but missing, or terminated by the app.
pub const UNAUTHORIZED: u16 = 4009;
/// The client did not keep up with its outbound queue (slow consumer); reconnect after backoff.
pub const OVER_CAPACITY: u16 = 4100;
/// Generic "reconnect now" (server shutdown, malformed frame as a non-fatal error code).
pub const RECONNECT: u16 = 4200;
/// The client did not answer a `pusher:ping` in time.
pub const PONG_NOT_RECEIVED: u16 = 4201;
/// Client event rejected (non-fatal error only).
pub const CLIENT_EVENT_REJECTED: u16 = 4301;
/// WebSocket close code for an inbound frame over the size limit.
pub const MESSAGE_TOO_BIG: u16 = 1009;

/// Subscription error statuses (house decision, protocol.md §0).
pub mod subscription {
    /// Presence channel full.
    pub const CHANNEL_FULL: u16 = 4004;
    /// Presence member data too big.
    pub const MEMBER_TOO_BIG: u16 = 4301;
    /// Channel name invalid or too long.
    pub const INVALID_CHANNEL: u16 = 4009;
    /// Bad or missing signature (HTTP-like status, as pusher-js reports auth failures).
    pub const AUTH: u16 = 401;
}
