//! Signed HTTP API requests over one keep-alive connection.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::target::Target;

pub struct ApiClient {
    target: Target,
    sender: SendRequest<Full<Bytes>>,
}

impl ApiClient {
    pub async fn connect(target: &Target) -> Result<ApiClient, String> {
        let stream = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let stream = crate::stream::wrap(target, stream).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(ApiClient {
            target: target.clone(),
            sender,
        })
    }

    /// POSTs a signed request and returns the status and body.
    pub async fn post(&mut self, path: &str, body: String) -> Result<(u16, Bytes), String> {
        let uri = self.target.signed_path("POST", path, body.as_bytes());
        let req = hyper::Request::builder()
            .method("POST")
            .uri(uri)
            .header("host", &self.target.host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.send(req).await
    }

    async fn send(&mut self, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let res = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        read(res).await
    }

    /// GETs a signed request with extra query parameters and returns the status and body.
    pub async fn get(
        &mut self,
        path: &str,
        extra: &[(String, String)],
    ) -> Result<(u16, Bytes), String> {
        let uri = self.target.signed_path_with("GET", path, b"", extra);
        let req = hyper::Request::builder()
            .method("GET")
            .uri(uri)
            .header("host", &self.target.host)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.send(req).await
    }

    /// The epoch and top offset of a recorded channel's history (`GET …/history?limit=0`).
    pub async fn history_head(&mut self, channel: &str) -> Result<(String, u64), String> {
        let path = format!("/apps/{}/channels/{channel}/history", self.target.app_id);
        let (status, body) = self
            .get(&path, &[("limit".to_string(), "0".to_string())])
            .await?;
        if status != 200 {
            return Err(format!(
                "history of {channel}: {status} {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        match (v["epoch"].as_str(), v["top"].as_u64()) {
            (Some(e), Some(top)) => Ok((e.to_string(), top)),
            _ => Err(format!("history of {channel}: unexpected answer {v}")),
        }
    }

    /// Publishes several events in one `batch_events` request: `(channel, event, data)` each.
    pub async fn batch(&mut self, events: &[(String, &str, String)]) -> Result<u16, String> {
        let batch: Vec<serde_json::Value> = events
            .iter()
            .map(|(c, e, d)| serde_json::json!({"name": e, "channel": c, "data": d}))
            .collect();
        let body = serde_json::json!({ "batch": batch }).to_string();
        let path = format!("/apps/{}/batch_events", self.target.app_id);
        Ok(self.post(&path, body).await?.0)
    }

    /// Triggers `event` on `channel` with `data` (a JSON text that becomes the data string).
    pub async fn trigger(
        &mut self,
        channel: &str,
        event: &str,
        data: &str,
    ) -> Result<(u16, Bytes), String> {
        let body = serde_json::json!({"name": event, "channel": channel, "data": data}).to_string();
        let path = format!("/apps/{}/events", self.target.app_id);
        self.post(&path, body).await
    }
}

/// An unsigned `GET http://host:port/path` on a fresh connection (the metrics endpoint).
pub async fn get_plain(host: &str, port: u16, path: &str) -> Result<(u16, Bytes), String> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method("GET")
        .uri(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    read(res).await
}

/// A response's status and whole body.
async fn read(res: hyper::Response<hyper::body::Incoming>) -> Result<(u16, Bytes), String> {
    let status = res.status().as_u16();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

/// The sum of a Prometheus metric's samples over all its label sets (`None` when absent).
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue; // another metric whose name starts with this one
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::metric_sum;

    #[test]
    fn sums_a_metric_over_its_labels_only() {
        let text = "# TYPE clarion_history_bytes gauge\n\
                    clarion_history_bytes{app_id=\"a\"} 100\n\
                    clarion_history_bytes{app_id=\"b\"} 20\n\
                    clarion_history_bytes_other 5\n";
        assert_eq!(metric_sum(text, "clarion_history_bytes"), Some(120.0));
        assert_eq!(metric_sum(text, "clarion_nothing"), None);
    }
}
