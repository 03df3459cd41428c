//! TLS termination with rustls, for deployments without a reverse proxy. The certificate and
//! key are read at start (an unreadable pair stops the start) and again on SIGHUP (a bad new
//! pair is refused and the old one stays).

use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// The current server configuration and where its certificate came from.
pub struct Tls {
    cert: String,
    key: String,
    config: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Loads the pair; the error names the key (`tls_cert` / `tls_key`) and the problem.
    pub fn load(cert: &str, key: &str) -> Result<Tls, String> {
        Ok(Tls {
            config: RwLock::new(server_config(cert, key)?),
            cert: cert.to_string(),
            key: key.to_string(),
        })
    }

    /// The configuration for a new connection's handshake (`tls_stream::accept`).
    pub fn config(&self) -> Arc<ServerConfig> {
        crate::sync::read(&self.config).clone()
    }

    /// Re-reads the files; on error the current certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = server_config(&self.cert, &self.key)?;
        let mut g = crate::sync::write(&self.config);
        *g = fresh;
        Ok(())
    }
}

fn server_config(cert: &str, key: &str) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls_cert: cannot read {cert:?}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_cert: {cert:?} is not a PEM certificate chain: {e}"))?;
    if certs.is_empty() {
        return Err(format!("tls_cert: {cert:?} holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("tls_key: cannot read a PEM private key from {key:?}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_key: does not match tls_cert or is unusable: {e}"))?;
    Ok(Arc::new(config))
}
