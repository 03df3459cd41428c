//! Webhook events with exactly the fields of docs/protocol.md §6.

use serde_json::{json, Map, Value};

pub use crate::protocol::webhook::Kind;

/// One webhook event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub kind: Kind,
    pub channel: String,
    /// Presence events: the user, for matching a removal with a quick re-join.
    pub user_id: Option<Value>,
    extra: Map<String, Value>,
}

impl Event {
    fn new(kind: Kind, channel: &str) -> Event {
        Event {
            kind,
            channel: channel.to_string(),
            user_id: None,
            extra: Map::new(),
        }
    }

    pub fn channel_occupied(channel: &str) -> Event {
        Event::new(Kind::ChannelOccupied, channel)
    }

    pub fn channel_vacated(channel: &str) -> Event {
        Event::new(Kind::ChannelVacated, channel)
    }

    pub fn member_added(channel: &str, user_id: &Value) -> Event {
        Event {
            user_id: Some(user_id.clone()),
            ..Event::new(Kind::MemberAdded, channel)
        }
    }

    pub fn member_removed(channel: &str, user_id: &Value) -> Event {
        Event {
            user_id: Some(user_id.clone()),
            ..Event::new(Kind::MemberRemoved, channel)
        }
    }

    pub fn cache_miss(channel: &str) -> Event {
        Event::new(Kind::CacheMiss, channel)
    }

    pub fn subscription_count(channel: &str, count: usize) -> Event {
        let mut e = Event::new(Kind::SubscriptionCount, channel);
        e.extra.insert("subscription_count".into(), json!(count));
        e
    }

    /// A client event; `data` is sent as a string (an object the client sent is JSON-encoded),
    /// `user_id` only on presence channels.
    pub fn client_event(
        channel: &str,
        event: &str,
        data: Option<&str>,
        socket_id: &str,
        user_id: Option<Value>,
    ) -> Event {
        let mut e = Event::new(Kind::ClientEvent, channel);
        e.extra.insert("event".into(), json!(event));
        let data = match data {
            Some(raw) => match serde_json::from_str::<Value>(raw) {
                Ok(Value::String(s)) => s,
                _ => raw.to_string(),
            },
            None => String::new(),
        };
        e.extra.insert("data".into(), Value::String(data));
        e.extra.insert("socket_id".into(), json!(socket_id));
        e.user_id = user_id;
        e
    }

    /// The `subscription_count` of a subscription_count event.
    pub fn count(&self) -> Option<usize> {
        self.extra
            .get("subscription_count")
            .and_then(Value::as_u64)
            .map(|n| n as usize)
    }

    /// The event as it appears in the `events` array.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.kind.name()));
        m.insert("channel".into(), json!(self.channel));
        if let Some(u) = &self.user_id {
            m.insert("user_id".into(), u.clone());
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_match_the_documentation() {
        assert_eq!(
            Event::channel_occupied("a").to_json(),
            json!({"name": "channel_occupied", "channel": "a"})
        );
        assert_eq!(
            Event::member_added("presence-a", &json!(5)).to_json(),
            json!({"name": "member_added", "channel": "presence-a", "user_id": 5})
        );
        assert_eq!(
            Event::client_event("private-a", "client-x", Some("{\"a\":1}"), "1.2", None).to_json(),
            json!({"name": "client_event", "channel": "private-a", "event": "client-x", "data": "{\"a\":1}", "socket_id": "1.2"})
        );
        assert_eq!(
            Event::subscription_count("a", 3).to_json(),
            json!({"name": "subscription_count", "channel": "a", "subscription_count": 3})
        );
    }
}
