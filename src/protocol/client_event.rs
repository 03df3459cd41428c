//! The rules for client events (`client-*`, Echo's whispers), docs/protocol.md §2.3, in the order
//! they are checked. A rejected event gets a non-fatal `pusher:error` 4301 with the
//! rejection's text and is delivered to no one.

use super::channel_name::ChannelKind;
use super::event::{self, EventLimits, LimitError};

/// What an app allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `enable_client_messages`.
    pub enabled: bool,
    pub limits: EventLimits,
    /// `max_client_events_per_second` (for the rejection's text; the budget is the caller's).
    pub per_second: u32,
}

/// Why a client event was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The name does not start with `client-`.
    NotClientEvent {
        event: String,
    },
    NoChannel,
    Disabled,
    /// Only private and presence channels carry client events (not `#server-to-user-`).
    ChannelType,
    Encrypted,
    NotSubscribed {
        channel: String,
    },
    Limit(LimitError),
    /// The connection spent its budget for this second.
    RateLimited {
        per_second: u32,
    },
}

impl Rejection {
    /// Whether the rate limit refused it (counted in `rate_limit_rejections`).
    pub fn is_rate_limit(&self) -> bool {
        matches!(self, Rejection::RateLimited { .. })
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::NotClientEvent { event } => write!(
                f,
                "Event {event:?} rejected: clients may only send events whose name starts with client-"
            ),
            Rejection::NoChannel => write!(f, "Client event rejected: it needs a channel"),
            Rejection::Disabled => write!(
                f,
                "Client event rejected: client events are disabled for this app"
            ),
            Rejection::ChannelType => write!(
                f,
                "Client event rejected: client events are only allowed on private and presence channels"
            ),
            Rejection::Encrypted => write!(
                f,
                "Client event rejected: client events are not supported on encrypted channels"
            ),
            Rejection::NotSubscribed { channel } => write!(
                f,
                "Client event rejected: the connection is not subscribed to {channel:?}"
            ),
            Rejection::Limit(e) => write!(f, "Client event rejected: {e}"),
            Rejection::RateLimited { per_second } => write!(
                f,
                "Client event rejected due to rate limit ({per_second} per second)"
            ),
        }
    }
}

/// Checks a client event `event` on `channel` whose data has [`event::data_size`]
/// `data_size`. `subscribed` says whether the sender is subscribed to a channel; `take_budget`
/// spends one event of the sender's rate limit and is only called when every other rule passed,
/// so a refused event costs nothing. Returns the channel.
pub fn check<'a>(
    event: &str,
    channel: Option<&'a str>,
    data_size: usize,
    policy: Policy,
    subscribed: impl FnOnce(&str) -> bool,
    take_budget: impl FnOnce() -> bool,
) -> Result<&'a str, Rejection> {
    if !event.starts_with("client-") {
        return Err(Rejection::NotClientEvent {
            event: event.to_string(),
        });
    }
    let channel = channel.ok_or(Rejection::NoChannel)?;
    if !policy.enabled {
        return Err(Rejection::Disabled);
    }
    let kind = ChannelKind::of(channel);
    if !kind.private || kind.server_to_user {
        return Err(Rejection::ChannelType);
    }
    if kind.encrypted {
        return Err(Rejection::Encrypted);
    }
    if !subscribed(channel) {
        return Err(Rejection::NotSubscribed {
            channel: channel.to_string(),
        });
    }
    event::check(event, data_size, policy.limits).map_err(Rejection::Limit)?;
    if !take_budget() {
        return Err(Rejection::RateLimited {
            per_second: policy.per_second,
        });
    }
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        enabled: true,
        limits: EventLimits {
            max_name_length: 20,
            max_data_size: 100,
        },
        per_second: 10,
    };

    fn run(event: &str, channel: Option<&str>, size: usize) -> Result<String, Rejection> {
        check(event, channel, size, POLICY, |_| true, || true).map(str::to_string)
    }

    #[test]
    fn only_private_and_presence_channels_carry_client_events() {
        assert_eq!(
            run("client-a", Some("private-x"), 1),
            Ok("private-x".into())
        );
        assert_eq!(
            run("client-a", Some("presence-x"), 1),
            Ok("presence-x".into())
        );
        for public in ["x", "cache-x", "#server-to-user-1"] {
            assert_eq!(
                run("client-a", Some(public), 1),
                Err(Rejection::ChannelType)
            );
        }
        assert_eq!(
            run("client-a", Some("private-encrypted-x"), 1),
            Err(Rejection::Encrypted)
        );
    }

    #[test]
    fn rules_apply_in_order_and_name_what_failed() {
        assert!(matches!(
            run("pusher:x", Some("private-x"), 1),
            Err(Rejection::NotClientEvent { .. })
        ));
        assert_eq!(run("client-a", None, 1), Err(Rejection::NoChannel));
        let off = Policy {
            enabled: false,
            ..POLICY
        };
        assert_eq!(
            check("client-a", Some("x"), 1, off, |_| true, || true),
            Err(Rejection::Disabled)
        );
        assert_eq!(
            check("client-a", Some("private-x"), 1, POLICY, |_| false, || true),
            Err(Rejection::NotSubscribed {
                channel: "private-x".into()
            })
        );
        assert!(matches!(
            run("client-a", Some("private-x"), 101),
            Err(Rejection::Limit(LimitError::DataTooLarge { .. }))
        ));
    }

    #[test]
    fn the_budget_is_spent_only_by_events_that_pass_every_other_rule() {
        let mut spent = 0;
        let refused = check(
            "client-a",
            Some("x"),
            1,
            POLICY,
            |_| true,
            || {
                spent += 1;
                true
            },
        );
        assert_eq!(refused, Err(Rejection::ChannelType));
        assert_eq!(spent, 0);
        let limited = check("client-a", Some("private-x"), 1, POLICY, |_| true, || false);
        assert_eq!(limited, Err(Rejection::RateLimited { per_second: 10 }));
        assert!(limited.expect_err("limited").is_rate_limit());
        assert_eq!(
            Rejection::RateLimited { per_second: 10 }.to_string(),
            "Client event rejected due to rate limit (10 per second)"
        );
    }
}
