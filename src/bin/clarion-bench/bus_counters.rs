//! Bus messages each node of a cluster received during a run: its `…_redis_received_total`
//! (every bus message that reached the node) read from its metrics port before and after.
//! This is how interest-based fan-out shows (docs/cluster.md): a node that watches a quarter
//! of the channels receives about a quarter of the events.

use std::time::Duration;

use crate::http_client::get_plain;

/// The value of the first `*_redis_received_total` series on `127.0.0.1:port`'s `/metrics`.
pub async fn received(port: u16) -> Option<f64> {
    let read = get_plain("127.0.0.1", port, "/metrics");
    let (_, body) = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("redis_received_total "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Every port's counter (`None` where it could not be read).
pub async fn all(ports: &[u16]) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(ports.len());
    for p in ports {
        out.push(received(*p).await);
    }
    out
}

/// Per node: messages received between `before` and `after`.
pub fn deltas(before: &[Option<f64>], after: &[Option<f64>]) -> Vec<Option<f64>> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| match (b, a) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        })
        .collect()
}
