//! Bus messages each node of a cluster received during a run: its `…_redis_received_total`
//! (every bus message that reached the node) read from its metrics port before and after.
//! This is how interest-based fan-out shows (docs/cluster.md): a node that watches a quarter
//! of the channels receives about a quarter of the events.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET /metrics` on `127.0.0.1:port`; the value of the first `*_redis_received_total` series.
pub async fn received(port: u16) -> Option<f64> {
    let read = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).await.ok()?;
        Some(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()??;
    body.lines()
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
