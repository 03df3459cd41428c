//! A small HTTP/1.1 client over TCP, or over TLS (rustls with the Mozilla roots) for https
//! URLs: webhook deliveries and the `clarion trigger`/query commands use it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

fn tls() -> &'static tokio_rustls::TlsConnector {
    static CONNECTOR: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();
    CONNECTOR.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // The one provider and the default versions are compiled in together: no input can
        // make this fail.
        #[allow(clippy::unreachable)]
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"));
        tokio_rustls::TlsConnector::from(Arc::new(config))
    })
}

/// POSTs `body` to `url` with `headers`; returns the status, or why no status came back.
pub async fn post(
    url: &Uri,
    headers: &[(String, String)],
    body: Bytes,
    timeout: Duration,
) -> Result<u16, String> {
    request("POST", url, headers, body, timeout)
        .await
        .map(|(status, _)| status)
}

/// Sends one request; returns the status and the body, or why no answer came back.
pub async fn request(
    method: &str,
    url: &Uri,
    headers: &[(String, String)],
    body: Bytes,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    match tokio::time::timeout(timeout, attempt(method, url, headers, body)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn attempt(
    method: &str,
    url: &Uri,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<(u16, Bytes), String> {
    let https = url.scheme_str() == Some("https");
    let host = url.host().ok_or("URL without host")?.to_string();
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if https {
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("server name: {e}"))?;
        let stream = tls()
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        send(stream, method, url, &host, headers, body).await
    } else {
        send(tcp, method, url, &host, headers, body).await
    }
}

async fn send<S>(
    io: S,
    method: &str,
    url: &Uri,
    host: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<(u16, Bytes), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(conn);
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("request: {e}"))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok((status, body))
}
