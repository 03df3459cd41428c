//! TLS termination: a generated self-signed certificate, a `wss://` client and an HTTPS call.

use crate::common::*;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// Writes a self-signed certificate for localhost/127.0.0.1 with openssl.
fn self_signed(dir: &Path, name: &str) -> (String, String) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    )
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    cert: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).expect("read cert") {
        roots.add(c.expect("cert")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake with the server's certificate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_and_https_work_with_the_configured_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path(), "a");
    let server = TestServer::start(&format!(
        "tls_cert = \"{cert}\"\ntls_key = \"{key}\"\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n"
    ))
    .await;
    // wss://
    let tls = tls_connect(server.addr, &cert).await;
    let url = format!("wss://localhost:{}/app/k?protocol=7", server.addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .expect("wss handshake");
    use futures_util::StreamExt;
    let first = ws.next().await.expect("a message").expect("ok");
    let first: serde_json::Value =
        serde_json::from_str(first.to_text().expect("text")).expect("json");
    assert_eq!(first["event"], "pusher:connection_established");

    // https:// for the API's health endpoint.
    let tls = tls_connect(server.addr, &cert).await;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("http over tls");
    tokio::spawn(conn);
    let req = hyper::Request::get("/up")
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    assert_eq!(
        sender.send_request(req).await.expect("response").status(),
        200
    );

    // Plain text on the TLS port gets no HTTP answer.
    let (status, _) = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        let stream = TcpStream::connect(server.addr).await.expect("tcp");
        match hyper::client::conn::http1::handshake::<_, http_body_util::Empty<bytes::Bytes>>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        {
            Ok((mut s, c)) => {
                tokio::spawn(c);
                let req = hyper::Request::get("/up")
                    .header("host", "x")
                    .body(http_body_util::Empty::new())
                    .expect("req");
                (
                    s.send_request(req)
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0),
                    (),
                )
            }
            Err(_) => (0, ()),
        }
    })
    .await
    .unwrap_or((0, ()));
    assert_eq!(
        status, 0,
        "a plain HTTP request must not be answered on the TLS port"
    );
}

#[test]
fn certificates_are_checked_at_start_and_reloaded_on_demand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path(), "a");
    let tls = clarion::net::tls::Tls::load(&cert, &key).expect("valid pair");
    // A broken replacement is refused and the old certificate stays usable.
    std::fs::write(&cert, "not a certificate").expect("write");
    assert!(tls.reload().expect_err("broken cert").contains("tls_cert"));
    let (cert2, key2) = self_signed(dir.path(), "b");
    std::fs::copy(&cert2, &cert).expect("copy");
    std::fs::copy(&key2, &key).expect("copy");
    assert!(tls.reload().is_ok());
    // A key that does not belong to the certificate is named at start.
    let (_, other_key) = self_signed(dir.path(), "c");
    let err = clarion::net::tls::Tls::load(&cert, &other_key)
        .err()
        .expect("mismatch refused");
    assert!(err.contains("tls_key"), "{err}");
    let mut c =
        clarion::config::Config::from_toml(&format!("tls_cert = \"{cert}\"")).expect("parses");
    assert!(c.finish().expect_err("key missing").contains("tls_key"));
}
