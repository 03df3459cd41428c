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
/// Watchlist longer than 100 ids (non-fatal error only; the first 100 are kept).
pub const WATCHLIST_LIMIT: u16 = 4302;
/// WebSocket close code for an inbound frame over the size limit.
pub const MESSAGE_TOO_BIG: u16 = 1009;

/// Every reason the server closes a connection, each with its code and the message pusher-js
/// shows: one table, so that the same situation is always announced the same way (as
/// `pusher:error` and close frame both, see `ws::connection`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fatal {
    /// No app has the key in the URL.
    AppNotFound,
    /// The app is disabled.
    AppDisabled,
    /// The app's key changed in a reload; its connections must reconnect with the new one.
    AppKeyChanged,
    /// `?protocol=` names a version the server does not speak.
    UnsupportedProtocol,
    /// The app is at `max_connections`.
    OverQuota,
    /// The client's address opened too many connections this second.
    OverConnectionRate,
    /// The client did not read its messages and its queue filled up.
    SlowConsumer,
    /// The server is shutting down: reconnect (to another node) at once.
    ShuttingDown,
    /// No frame came back after a server ping.
    PongNotReceived,
    /// The app requires sign-in and none came within the timeout.
    NotSignedIn,
    /// The application terminated the user's connections (HTTP API).
    TerminatedByApp,
    /// An inbound message was larger than `max_message_size`.
    MessageTooBig,
    /// The page's `Origin` is not in the app's `allowed_origins`.
    OriginNotAllowed,
    /// Neither signed in nor subscribed to a private or presence channel within the app's
    /// `authorized_connections_timeout`.
    NotAuthorized,
    /// This node missed events of a recorded channel the client follows (docs/recovery.md):
    /// reconnect at once and recover them from history.
    RecoveryGap,
}

impl Fatal {
    /// The close code (and `pusher:error` code).
    pub fn code(self) -> u16 {
        match self {
            Fatal::AppNotFound | Fatal::AppKeyChanged => APP_NOT_FOUND,
            Fatal::AppDisabled => APP_DISABLED,
            Fatal::UnsupportedProtocol => UNSUPPORTED_PROTOCOL,
            Fatal::OverQuota => OVER_QUOTA,
            Fatal::OverConnectionRate | Fatal::SlowConsumer => OVER_CAPACITY,
            Fatal::ShuttingDown | Fatal::RecoveryGap => RECONNECT,
            Fatal::PongNotReceived => PONG_NOT_RECEIVED,
            Fatal::NotSignedIn
            | Fatal::TerminatedByApp
            | Fatal::OriginNotAllowed
            | Fatal::NotAuthorized => UNAUTHORIZED,
            Fatal::MessageTooBig => MESSAGE_TOO_BIG,
        }
    }

    /// The message that goes with the code.
    pub fn message(self) -> &'static str {
        match self {
            Fatal::AppNotFound => "Application does not exist",
            Fatal::AppDisabled => "Application is disabled",
            Fatal::AppKeyChanged => "Application key changed",
            Fatal::UnsupportedProtocol => "Unsupported protocol version",
            Fatal::OverQuota => "Application is over connection quota",
            Fatal::OverConnectionRate => {
                "Over capacity: too many new connections from this address; retry later"
            }
            Fatal::SlowConsumer => "Over capacity: the client did not read its messages in time",
            Fatal::ShuttingDown => "Server shutting down",
            Fatal::PongNotReceived => "Pong reply not received",
            Fatal::NotSignedIn => "Connection not signed in within the user authentication timeout",
            Fatal::TerminatedByApp => "Connection terminated by the application",
            Fatal::MessageTooBig => "Maximum message size exceeded",
            Fatal::RecoveryGap => "Missed events on this node; reconnect to recover them",
            Fatal::OriginNotAllowed => "Origin not allowed",
            Fatal::NotAuthorized => "Connection not authorized within timeout",
        }
    }
}

/// Subscription error statuses (house decision, docs/protocol.md §0).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// pusher-js stops reconnecting on 4000–4099 and on 43xx: only refusals that a reconnect
    /// cannot fix may use them, and 43xx never closes a connection.
    #[test]
    fn close_codes_match_what_pusher_js_does_with_them() {
        let all = [
            Fatal::AppNotFound,
            Fatal::AppDisabled,
            Fatal::AppKeyChanged,
            Fatal::UnsupportedProtocol,
            Fatal::OverQuota,
            Fatal::OverConnectionRate,
            Fatal::SlowConsumer,
            Fatal::ShuttingDown,
            Fatal::PongNotReceived,
            Fatal::NotSignedIn,
            Fatal::TerminatedByApp,
            Fatal::MessageTooBig,
            Fatal::RecoveryGap,
            Fatal::OriginNotAllowed,
            Fatal::NotAuthorized,
        ];
        for f in all {
            assert!(!(4300..4400).contains(&f.code()), "{f:?}");
            assert!(!f.message().is_empty(), "{f:?}");
        }
        let retry_later = [Fatal::OverConnectionRate, Fatal::SlowConsumer];
        assert!(retry_later.iter().all(|f| (4100..4200).contains(&f.code())));
        let reconnect_now = [
            Fatal::ShuttingDown,
            Fatal::PongNotReceived,
            Fatal::RecoveryGap,
        ];
        assert!(reconnect_now
            .iter()
            .all(|f| (4200..4300).contains(&f.code())));
        let refused = [
            Fatal::AppNotFound,
            Fatal::AppDisabled,
            Fatal::OverQuota,
            Fatal::OriginNotAllowed,
            Fatal::NotAuthorized,
        ];
        assert!(refused.iter().all(|f| (4000..4100).contains(&f.code())));
    }
}
