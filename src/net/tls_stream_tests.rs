//! The TLS stream against tokio-rustls's client over an in-memory pipe: handshakes with TLS 1.2
//! and 1.3, data larger than a record both ways, close_notify both ways, a refused non-TLS
//! client, and no buffer held once a connection goes quiet.

use std::process::Command;
use std::sync::Arc;

use futures_util::FutureExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::{accept, TlsStream};

/// A self-signed certificate for localhost, made by openssl (as the functional tests do).
fn certificate() -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs = CertificateDer::pem_file_iter(&cert)
        .expect("cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    (certs, PrivateKeyDer::from_pem_file(&key).expect("key"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<rustls::ServerConfig> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    Arc::new(config)
}

fn connector(
    certs: &[CertificateDer<'static>],
    version: &'static rustls::SupportedProtocolVersion,
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c.clone()).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .expect("version")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type Client = tokio_rustls::client::TlsStream<DuplexStream>;

/// A handshaken pair: our server stream and a tokio-rustls client, over a pipe.
async fn pair(
    version: &'static rustls::SupportedProtocolVersion,
) -> (TlsStream<DuplexStream>, Client) {
    let (certs, key) = certificate();
    let (client_io, server_io) = duplex(64 * 1024);
    let name = ServerName::try_from("localhost").expect("name");
    let client = connector(&certs, version).connect(name, client_io);
    let (server, client) = tokio::join!(accept(server_config(certs, key), server_io), client);
    let client = client.expect("client handshake");
    assert_eq!(client.get_ref().1.protocol_version(), Some(version.version));
    (server.expect("server handshake"), client)
}

/// Bytes that show a misplaced or repeated chunk.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

#[tokio::test]
async fn data_larger_than_a_record_crosses_both_ways_on_tls12_and_tls13() {
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let (mut server, mut client) = pair(version).await;
        let up = pattern(200_000, 1);
        let down = pattern(300_000, 2);
        let (sent_up, got_up) = tokio::join!(
            async {
                client.write_all(&up).await.expect("client write");
                client.flush().await.expect("client flush");
            },
            async {
                let mut got = vec![0; up.len()];
                server.read_exact(&mut got).await.expect("server read");
                got
            }
        );
        let () = sent_up;
        assert!(got_up == up, "client to server over {version:?}");
        let (_, got_down) = tokio::join!(
            async {
                server.write_all(&down).await.expect("server write");
                server.flush().await.expect("server flush");
            },
            async {
                let mut got = vec![0; down.len()];
                client.read_exact(&mut got).await.expect("client read");
                got
            }
        );
        assert!(got_down == down, "server to client over {version:?}");
    }
}

#[tokio::test]
async fn a_quiet_connection_holds_no_buffer() {
    let (mut server, mut client) = pair(&rustls::version::TLS13).await;
    client
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    client.flush().await.expect("flush");
    let mut got = [0u8; 18];
    server.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"GET / HTTP/1.1\r\n\r\n");
    server.write_all(&pattern(5000, 3)).await.expect("write");
    server.flush().await.expect("flush");
    let mut reply = vec![0; 5000];
    client.read_exact(&mut reply).await.expect("reply");
    // Nothing more has arrived: the read waits, and every buffer is given back.
    let mut more = [0u8; 16];
    assert!(
        server.read(&mut more).now_or_never().is_none(),
        "no data was sent"
    );
    assert_eq!(server.buffered(), 0);
}

#[tokio::test]
async fn close_notify_ends_the_stream_in_both_directions() {
    let (mut server, mut client) = pair(&rustls::version::TLS13).await;
    client.shutdown().await.expect("client close_notify");
    let mut buf = [0u8; 8];
    assert_eq!(server.read(&mut buf).await.expect("clean end"), 0);
    // The server may still write after the peer's close_notify, then closes too.
    server
        .write_all(b"bye")
        .await
        .expect("write after peer close");
    server.shutdown().await.expect("server close_notify");
    let mut got = Vec::new();
    client
        .read_to_end(&mut got)
        .await
        .expect("client sees a clean end");
    assert_eq!(got, b"bye");
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_refused_with_an_alert() {
    let (certs, key) = certificate();
    let (mut client_io, server_io) = duplex(64 * 1024);
    let server = tokio::spawn(accept(server_config(certs, key), server_io));
    client_io
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let refused = server.await.expect("task");
    assert!(refused.is_err(), "a non-TLS client is an error");
    let mut answer = Vec::new();
    client_io.read_to_end(&mut answer).await.expect("read");
    // A TLS alert record: content type 21.
    assert_eq!(
        answer.first(),
        Some(&21),
        "the server answers with an alert: {answer:?}"
    );
}
