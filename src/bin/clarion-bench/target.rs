//! The server under test and the signing of its HTTP API requests.

use clarion::protocol::signature;

/// Where the server listens and which app to use.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub app_id: String,
    pub key: String,
    pub secret: String,
    /// `wss://` and `https://`: the server terminates TLS itself (`stream`).
    pub tls: bool,
}

impl Target {
    pub fn ws_path(&self) -> String {
        format!(
            "/app/{}?protocol=7&client=clarion-bench&version=0.1",
            self.key
        )
    }

    /// The path and signed query of an API request.
    pub fn signed_path(&self, method: &str, path: &str, body: &[u8]) -> String {
        self.signed_path_with(method, path, body, &[])
    }

    /// The path and signed query of an API request with extra query parameters.
    pub fn signed_path_with(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        extra: &[(String, String)],
    ) -> String {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let query = signature::signed_query(&self.key, &self.secret, method, path, body, extra, ts);
        format!("{path}?{query}")
    }

    /// `key:signature` for a private or presence channel subscription.
    pub fn channel_auth(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: Option<&str>,
    ) -> String {
        let msg = match channel_data {
            Some(d) => format!("{socket_id}:{channel}:{d}"),
            None => format!("{socket_id}:{channel}"),
        };
        format!("{}:{}", self.key, signature::sign(&self.secret, &msg))
    }

    /// `key:signature` for `pusher:signin`: HMAC-SHA256 of `socket_id::user::user_data`.
    pub fn user_auth(&self, socket_id: &str, user_data: &str) -> String {
        let msg = format!("{socket_id}::user::{user_data}");
        format!("{}:{}", self.key, signature::sign(&self.secret, &msg))
    }

    /// The same server on another port (the second node of a cluster).
    pub fn on_port(&self, port: u16) -> Target {
        Target {
            port,
            ..self.clone()
        }
    }
}

/// Microseconds since the Unix epoch: the clock both the sender and the receiver read, so a
/// latency is the difference of two readings on the same machine.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Finds the send timestamp `t` in a frame. The publisher writes `{"t":<micros>,…}` into the
/// event data, which reaches us inside a JSON string (`{\"t\":123,…}`), or as an object for
/// client events (`{"t":123,…}`). A scan is much cheaper than parsing the frame twice.
pub fn extract_timestamp(frame: &[u8]) -> Option<u64> {
    number_after(frame, b"\"t\\\":", b"\"t\":")
}

/// The unsigned number right after the first of two spellings of a JSON key in a frame: as it
/// reads inside a JSON string (`escaped`, `\"key\":`) or in an object (`plain`, `"key":`).
pub fn number_after(frame: &[u8], escaped: &[u8], plain: &[u8]) -> Option<u64> {
    let at = find(frame, escaped)
        .map(|i| i + escaped.len())
        .or_else(|| find(frame, plain).map(|i| i + plain.len()))?;
    let digits = frame.get(at..)?;
    let end = digits
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(digits.get(..end)?).ok()?.parse().ok()
}

/// The first position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_timestamps_in_both_encodings() {
        assert_eq!(
            extract_timestamp(br#"{"event":"e","data":"{\"t\":123,\"p\":\"x\"}"}"#),
            Some(123)
        );
        assert_eq!(
            extract_timestamp(br#"{"event":"client-e","data":{"t":77}}"#),
            Some(77)
        );
        assert_eq!(extract_timestamp(br#"{"event":"e","data":"{}"}"#), None);
    }
}
