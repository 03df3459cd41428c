//! Which channels of an app keep history for missed-message recovery (`[[apps.recovery]]`,
//! docs/recovery.md), and what to do when history cannot be written.

use serde::{Deserialize, Serialize};

use crate::protocol::channel_name::matches_pattern;

/// One `[[apps.recovery]]` table: channel patterns and their history window. The first table
/// whose pattern matches a channel applies; no table, no recording.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Recording {
    /// Channel names, `*` matching any run of characters (`private-provider.*`).
    pub channels: Vec<String>,
    /// Events kept per channel.
    pub history_size: usize,
    /// Seconds history is kept after the channel's last event.
    pub history_ttl: u64,
    /// Most events replayed in one subscribe (at most `history_size`).
    pub max_replay: usize,
    /// Whether client events on these channels are recorded too.
    pub record_client_events: bool,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            channels: Vec::new(),
            history_size: 100,
            history_ttl: 600,
            max_replay: 100,
            record_client_events: false,
        }
    }
}

/// What a publish on a recorded channel does when history cannot be written.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnHistoryError {
    /// Refuse the publish (HTTP 503): every event answered 200 is in history.
    #[default]
    Reject,
    /// Deliver without a stamp and start a new epoch once history works again.
    Deliver,
}

impl Recording {
    /// Whether `channel` is one of this table's.
    pub fn covers(&self, channel: &str) -> bool {
        self.channels.iter().any(|p| matches_pattern(p, channel))
    }

    /// Checks one table; `at` names it in messages (`apps[0].recovery[1]`).
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if self.channels.is_empty() || self.channels.iter().any(|p| p.trim().is_empty()) {
            return Err(format!(
                "{at}.channels: name at least one channel pattern (e.g. \"private-provider.*\")"
            ));
        }
        if !(1..=10_000).contains(&self.history_size) {
            return Err(format!("{at}.history_size: must be between 1 and 10000"));
        }
        if self.history_ttl == 0 {
            return Err(format!("{at}.history_ttl: must be at least 1 second"));
        }
        if self.max_replay == 0 || self.max_replay > self.history_size {
            return Err(format!(
                "{at}.max_replay: must be between 1 and history_size ({})",
                self.history_size
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(patterns: &[&str]) -> Recording {
        Recording {
            channels: patterns.iter().map(|p| p.to_string()).collect(),
            ..Recording::default()
        }
    }

    #[test]
    fn patterns_cover_their_channels() {
        let r = rule(&["private-provider.*", "orders"]);
        assert!(r.covers("private-provider.42"));
        assert!(r.covers("orders"));
        assert!(!r.covers("private-client.42"));
        assert!(!r.covers("orders-2"));
    }

    #[test]
    fn windows_are_checked_and_named() {
        assert_eq!(rule(&["a"]).validate("r"), Ok(()));
        assert!(rule(&[])
            .validate("r")
            .expect_err("none")
            .starts_with("r.channels"));
        let wide = Recording {
            max_replay: 101,
            ..rule(&["a"])
        };
        assert!(wide
            .validate("r")
            .expect_err("over")
            .starts_with("r.max_replay"));
        let no_ttl = Recording {
            history_ttl: 0,
            ..rule(&["a"])
        };
        assert!(no_ttl.validate("r").is_err());
    }
}
