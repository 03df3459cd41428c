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
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let res = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
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
