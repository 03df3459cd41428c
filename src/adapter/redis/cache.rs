//! Cache channels' last events in Redis, so that a subscriber on any node gets the event
//! triggered through any other. The value is the event's `data`, a NUL byte, then the frame
//! (neither contains a NUL: both are JSON text); the key expires with the event.

use std::time::{Duration, Instant};

use super::RedisAdapter;
use crate::app::App;
use crate::channels::cache::{CachedEvent, CACHE_TTL};
use crate::protocol::frames::Frame;

/// The stored form of an event.
pub fn encode(event: &CachedEvent) -> Vec<u8> {
    let frame = event.frame.as_str().as_bytes();
    let mut value = Vec::with_capacity(event.data.len() + 1 + frame.len());
    value.extend_from_slice(event.data.as_bytes());
    value.push(0);
    value.extend_from_slice(frame);
    value
}

/// The event back from its stored form and the key's remaining time to live in milliseconds
/// (which dates it); None for a value this code did not write.
pub fn decode(value: &[u8], pttl_ms: u64) -> Option<CachedEvent> {
    let split = value.iter().position(|b| *b == 0)?;
    let (data, frame) = value.split_at(split);
    let data = String::from_utf8(data.to_vec()).ok()?;
    let frame = String::from_utf8(frame.get(1..)?.to_vec()).ok()?;
    let age = CACHE_TTL.saturating_sub(Duration::from_millis(pttl_ms));
    Some(CachedEvent {
        frame: Frame::from(frame),
        data,
        stored_at: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
    })
}

impl RedisAdapter {
    /// Keeps the event here and in Redis.
    pub(super) async fn store_cache(&self, app: &App, channel: &str, event: CachedEvent) {
        let value = encode(&event);
        self.local.namespace(&app.id).set_cache(channel, event);
        let _: Option<()> = self
            .query(
                "store cache",
                redis::cmd("SET")
                    .arg(self.keys.cache(&app.id, channel))
                    .arg(value)
                    .arg("PX")
                    .arg(CACHE_TTL.as_millis() as u64),
            )
            .await;
    }

    /// The cluster's last event of the channel; this node's when Redis does not answer.
    pub(super) async fn load_cache(&self, app: &App, channel: &str) -> Option<CachedEvent> {
        let key = self.keys.cache(&app.id, channel);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        match self
            .pipe::<(Option<Vec<u8>>, i64)>("read cache", &pipe)
            .await
        {
            Some((Some(value), pttl)) if pttl > 0 => decode(&value, pttl as u64),
            Some(_) => None,
            None => self.local.namespace(&app.id).get_cache(channel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_the_age() {
        let event = CachedEvent::new(
            Frame::from(r#"{"event":"e","channel":"cache-a","data":"{\"x\":1}"}"#),
            r#""{\"x\":1}""#.to_string(),
        );
        let bytes = encode(&event);
        // Stored 10 minutes ago: 20 minutes left.
        let back = decode(&bytes, 20 * 60 * 1000).expect("decodes");
        assert_eq!(back.frame.as_str(), event.frame.as_str());
        assert_eq!(back.data, event.data);
        let left = back.ttl_left(Instant::now()).expect("not expired");
        assert!((19 * 60..=20 * 60).contains(&left), "{left}");
    }

    #[test]
    fn foreign_values_are_ignored() {
        assert!(decode(b"no separator", 1000).is_none());
        assert!(decode(b"\xff\x00{}", 1000).is_none());
        assert!(decode(b"\x00", 1000).is_some_and(|e| e.data.is_empty()));
    }
}
