//! How this node reaches Redis: the URL and its TLS files, checked when the configuration is
//! read and turned into a client once. A `rediss://` URL with a CA file that does not parse, a
//! certificate without its key or TLS files beside a plain `redis://` URL is a start-up error
//! that names the key, never a failure at the first connection; the password never appears in
//! a message (`mask_url_password`).

use super::{mask_url_password, Config};

/// The parsed connection settings of the `redis` adapter.
#[derive(Clone)]
pub struct RedisTarget {
    /// A client for the URL, with the CA and client certificate loaded when given.
    pub client: redis::Client,
    /// The URL with its password masked, for logs.
    pub shown: String,
    /// Certificates are not verified (`redis_tls_insecure`): logged loudly at start.
    pub insecure: bool,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("url", &self.shown)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Checks the Redis keys that need no file system: the URL's scheme and shape, and that TLS
/// settings come with a `rediss://` URL and certificate with key.
pub(super) fn check_fields(c: &Config) -> Result<(), String> {
    let url = &c.redis_url;
    let shown = mask_url_password(url);
    let tls = url.starts_with("rediss://");
    if !tls && !url.starts_with("redis://") {
        return Err(format!(
            "redis_url: {shown:?} is neither a redis:// nor a rediss:// URL"
        ));
    }
    redis::Client::open(url.as_str()).map_err(|e| {
        format!(
            "redis_url: {shown:?} is not a usable Redis URL ({:?})",
            e.kind()
        )
    })?;
    if c.redis_tls_cert_file.is_empty() != c.redis_tls_key_file.is_empty() {
        return Err(
            "redis_tls_cert_file and redis_tls_key_file: give both (mutual TLS) or neither".into(),
        );
    }
    if !tls {
        let set = [
            ("redis_tls_ca_file", !c.redis_tls_ca_file.is_empty()),
            ("redis_tls_cert_file", !c.redis_tls_cert_file.is_empty()),
            ("redis_tls_insecure", c.redis_tls_insecure),
        ];
        if let Some((key, _)) = set.iter().find(|(_, on)| *on) {
            return Err(format!(
                "{key}: only applies to a rediss:// URL, and redis_url is {shown:?}"
            ));
        }
    }
    Ok(())
}

/// Builds the client: files are read here, so a missing or malformed one stops the start.
pub(super) fn target(c: &Config) -> Result<RedisTarget, String> {
    let shown = mask_url_password(&c.redis_url);
    let mut url = c.redis_url.clone();
    if c.redis_tls_insecure && !url.contains('#') {
        url.push_str("#insecure");
    }
    // rustls picks its crypto provider from the process default; ring is the one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read = |key: &str, path: &str| -> Result<Option<Vec<u8>>, String> {
        if path.is_empty() {
            return Ok(None);
        }
        std::fs::read(path)
            .map(Some)
            .map_err(|e| format!("{key}: cannot read {path:?}: {e}"))
    };
    let ca = read("redis_tls_ca_file", &c.redis_tls_ca_file)?;
    let cert = read("redis_tls_cert_file", &c.redis_tls_cert_file)?;
    let key = read("redis_tls_key_file", &c.redis_tls_key_file)?;
    let client = match (ca, cert, key) {
        (None, None, None) => redis::Client::open(url.as_str()),
        (root_cert, cert, key) => {
            let client_tls = match (cert, key) {
                (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }),
                _ => None,
            };
            redis::Client::build_with_tls(
                url.as_str(),
                redis::TlsCertificates {
                    client_tls,
                    root_cert,
                },
            )
        }
    }
    .map_err(|e| {
        let key = if c.redis_tls_cert_file.is_empty() {
            "redis_tls_ca_file"
        } else {
            "redis_tls_ca_file / redis_tls_cert_file / redis_tls_key_file"
        };
        // The error names a certificate problem; the URL (and its password) is not in it.
        format!("{key}: {}", e.detail().unwrap_or("unusable TLS files"))
    })?;
    Ok(RedisTarget {
        client,
        shown,
        insecure: c.redis_tls_insecure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<Config, String> {
        let mut c = Config::from_toml(&format!("adapter = \"redis\"\n{extra}"))?;
        c.finish()?;
        Ok(c)
    }

    #[test]
    fn tls_settings_need_a_rediss_url_and_come_in_pairs() {
        let e = config("redis_url = 'redis://u:Secret_1@h:1/0'\nredis_tls_insecure = true")
            .expect_err("insecure without TLS");
        assert!(
            e.starts_with("redis_tls_insecure:") && !e.contains("Secret_1"),
            "{e}"
        );
        let e = config("redis_url = 'rediss://h:1/0'\nredis_tls_cert_file = 'c.pem'")
            .expect_err("certificate without key");
        assert!(e.contains("redis_tls_key_file"), "{e}");
        assert!(config("redis_url = 'rediss://u:pw@h:1/0'").is_ok());
    }

    #[test]
    fn unreadable_or_malformed_files_name_their_key() {
        let e = config(
            "redis_url = 'rediss://u:Secret_1@h:1/0'\nredis_tls_ca_file = '/nonexistent/ca.pem'",
        )
        .expect_err("missing file");
        assert!(
            e.starts_with("redis_tls_ca_file:") && !e.contains("Secret_1"),
            "{e}"
        );
        let path = std::env::temp_dir().join(format!("clarion-ca-{}.pem", std::process::id()));
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = config(&format!(
            "redis_url = 'rediss://u:Secret_1@h:1/0'\nredis_tls_ca_file = '{}'",
            path.display()
        ))
        .expect_err("malformed PEM");
        let _ = std::fs::remove_file(&path);
        assert!(
            e.starts_with("redis_tls_ca_file:") && !e.contains("Secret_1"),
            "{e}"
        );
    }
}
