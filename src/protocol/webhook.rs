//! The names of Pusher's webhook events (docs/protocol.md §6): what an app can ask for in
//! `event_types`, and the `name` of each event sent. One list, so a configured name the server
//! never sends is refused when the config is read.

use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ChannelOccupied,
    ChannelVacated,
    MemberAdded,
    MemberRemoved,
    ClientEvent,
    CacheMiss,
    SubscriptionCount,
}

impl Kind {
    /// The event's `name` on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ChannelOccupied => "channel_occupied",
            Kind::ChannelVacated => "channel_vacated",
            Kind::MemberAdded => "member_added",
            Kind::MemberRemoved => "member_removed",
            Kind::ClientEvent => "client_event",
            Kind::CacheMiss => "cache_miss",
            Kind::SubscriptionCount => "subscription_count",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_are_wire_names() {
        for kind in [
            Kind::ChannelOccupied,
            Kind::ChannelVacated,
            Kind::MemberAdded,
            Kind::MemberRemoved,
            Kind::ClientEvent,
            Kind::CacheMiss,
            Kind::SubscriptionCount,
        ] {
            let as_config = serde_json::to_value(kind).expect("serializes");
            assert_eq!(as_config, kind.name());
            let back: Kind = serde_json::from_value(as_config).expect("parses");
            assert_eq!(back, kind);
        }
        assert!(serde_json::from_str::<Kind>("\"channel_exploded\"").is_err());
    }
}
