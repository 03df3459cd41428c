//! The `info` attributes a caller may ask for (`user_count`, `subscription_count`, and `cache`
//! on `GET /channels/{name}`), read from a query parameter or an event body, and written into
//! the answer. An attribute that does not apply to a channel (`user_count` on a public channel)
//! is left out rather than refused (docs/protocol.md §0).

use serde_json::{json, Map, Value};

use crate::adapter::ChannelStats;
use crate::protocol::channel_name::ChannelKind;

/// Which attributes the caller asked for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub user_count: bool,
    pub subscription_count: bool,
    pub cache: bool,
}

impl Info {
    /// Reads a comma-separated list; `cache` is only known where `allow_cache` says so. Public
    /// so the HTTP API fuzzer runs it on arbitrary input.
    pub fn parse(list: &str, allow_cache: bool) -> Result<Info, String> {
        let mut info = Info::default();
        for attr in list.split(',').map(str::trim) {
            match attr {
                "" => {}
                "user_count" => info.user_count = true,
                "subscription_count" => info.subscription_count = true,
                "cache" if allow_cache => info.cache = true,
                other => {
                    return Err(format!(
                        "info: unknown attribute {other:?} (use user_count, subscription_count{})",
                        if allow_cache { ", cache" } else { "" }
                    ))
                }
            }
        }
        Ok(info)
    }

    /// Whether any count was asked for.
    pub fn any(&self) -> bool {
        self.user_count || self.subscription_count
    }

    /// Adds the requested counts of `channel` to `attrs`: `user_count` only on presence
    /// channels.
    pub fn write_counts(&self, channel: &str, stats: ChannelStats, attrs: &mut Map<String, Value>) {
        if self.subscription_count {
            attrs.insert("subscription_count".into(), json!(stats.subscription_count));
        }
        if self.user_count && ChannelKind::of(channel).presence {
            attrs.insert("user_count".into(), json!(stats.user_count));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_names_the_unknown_attribute() {
        let both = Info::parse("user_count, subscription_count,", false).expect("valid");
        assert!(both.user_count && both.subscription_count && !both.cache);
        assert_eq!(Info::parse("", false), Ok(Info::default()));
        assert!(Info::parse("cache", true).expect("valid").cache);
        let e = Info::parse("cache", false).expect_err("cache only where allowed");
        assert_eq!(
            e,
            "info: unknown attribute \"cache\" (use user_count, subscription_count)"
        );
    }

    #[test]
    fn user_count_is_left_out_on_channels_without_users() {
        let info = Info::parse("user_count,subscription_count", false).expect("valid");
        let stats = ChannelStats {
            subscription_count: 3,
            user_count: 2,
        };
        let mut public = Map::new();
        info.write_counts("news", stats, &mut public);
        assert_eq!(Value::Object(public), json!({"subscription_count": 3}));
        let mut presence = Map::new();
        info.write_counts("presence-room", stats, &mut presence);
        assert_eq!(
            Value::Object(presence),
            json!({"subscription_count": 3, "user_count": 2})
        );
    }
}
