//! How this node reaches Redis: the URL and its TLS files, checked when the configuration is
//! read and turned into a client once. A `rediss://` URL with a CA file that does not parse, a
//! certificate without its key or TLS files beside a plain `redis://` URL is a start-up error
//! that names the key, never a failure at the first connection; the password never appears in
//! a message (`mask_url_password`).

use super::{mask_url_password, Config};
pub use crate::net::redis_servers::{ClusterSeeds, Sentinels, Servers};

/// The parsed connection settings of the `redis` adapter.
#[derive(Clone)]
pub struct RedisTarget {
    /// Where the server is.
    pub servers: Servers,
    /// The URL (or the sentinels and master name) with passwords masked, for logs.
    pub shown: String,
    /// Certificates are not verified (`redis_tls_insecure`): logged loudly at start.
    pub insecure: bool,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("servers", &self.shown)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// A `redis://` or `rediss://` URL that the redis crate can use, or an error naming `key`.
fn check_url(key: &str, url: &str) -> Result<(), String> {
    let shown = mask_url_password(url);
    if !url.starts_with("rediss://") && !url.starts_with("redis://") {
        return Err(format!(
            "{key}: {shown:?} is neither a redis:// nor a rediss:// URL"
        ));
    }
    redis::Client::open(url).map(|_| ()).map_err(|e| {
        format!(
            "{key}: {shown:?} is not a usable Redis URL ({:?})",
            e.kind()
        )
    })
}

/// Checks the Redis keys that need no file system: the mode, the URLs' scheme and shape, and
/// that TLS settings come with a `rediss://` URL and a certificate with its key.
pub(super) fn check_fields(c: &Config) -> Result<(), String> {
    check_url("redis_url", &c.redis_url)?;
    let mut tls = c.redis_url.starts_with("rediss://");
    match c.redis_mode.as_str() {
        "single" => {}
        "sentinel" => {
            if c.redis_sentinels.is_empty() {
                return Err(
                    "redis_sentinels: redis_mode = \"sentinel\" needs at least one sentinel URL"
                        .into(),
                );
            }
            for (i, url) in c.redis_sentinels.iter().enumerate() {
                check_url(&format!("redis_sentinels[{i}]"), url)?;
                tls |= url.starts_with("rediss://");
            }
            if c.redis_sentinel_master.trim().is_empty() {
                return Err(
                    "redis_sentinel_master: redis_mode = \"sentinel\" needs the master name the sentinels monitor"
                        .into(),
                );
            }
        }
        "cluster" => {
            if c.redis_cluster_nodes.is_empty() {
                return Err(
                    "redis_cluster_nodes: redis_mode = \"cluster\" needs at least one seed node URL"
                        .into(),
                );
            }
            for (i, url) in c.redis_cluster_nodes.iter().enumerate() {
                check_url(&format!("redis_cluster_nodes[{i}]"), url)?;
                tls |= url.starts_with("rediss://");
            }
        }
        other => {
            return Err(format!(
                "redis_mode: {other:?} is none of \"single\", \"sentinel\" and \"cluster\""
            ))
        }
    }
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
                "{key}: only applies to a rediss:// URL, and redis_url is {:?}",
                mask_url_password(&c.redis_url)
            ));
        }
    }
    Ok(())
}

/// The CA and client certificate files, read: a missing one stops the start.
fn certificates(c: &Config) -> Result<Option<redis::TlsCertificates>, String> {
    let read = |key: &str, path: &str| -> Result<Option<Vec<u8>>, String> {
        if path.is_empty() {
            return Ok(None);
        }
        std::fs::read(path)
            .map(Some)
            .map_err(|e| format!("{key}: cannot read {path:?}: {e}"))
    };
    let root_cert = read("redis_tls_ca_file", &c.redis_tls_ca_file)?;
    let cert = read("redis_tls_cert_file", &c.redis_tls_cert_file)?;
    let key = read("redis_tls_key_file", &c.redis_tls_key_file)?;
    let client_tls = match (cert, key) {
        (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
            client_cert,
            client_key,
        }),
        _ => None,
    };
    Ok(match (&root_cert, &client_tls) {
        (None, None) => None,
        _ => Some(redis::TlsCertificates {
            client_tls,
            root_cert,
        }),
    })
}

/// Which keys a certificate error is about.
fn tls_keys(c: &Config) -> &'static str {
    if c.redis_tls_cert_file.is_empty() {
        "redis_tls_ca_file"
    } else {
        "redis_tls_ca_file / redis_tls_cert_file / redis_tls_key_file"
    }
}

/// Builds the client: files are read here, so a missing or malformed one stops the start.
pub(super) fn target(c: &Config) -> Result<RedisTarget, String> {
    // rustls picks its crypto provider from the process default; ring is the one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = certificates(c)?;
    // The error names a certificate problem; the URL (and its password) is not in it.
    let tls_error = |e: redis::RedisError| {
        format!(
            "{}: {}",
            tls_keys(c),
            e.detail().unwrap_or("unusable TLS files")
        )
    };
    if c.redis_mode == "sentinel" {
        let info = |key: &str, url: &str| -> Result<redis::ConnectionInfo, String> {
            redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| {
                format!(
                    "{key}: {:?} is not a usable Redis URL ({:?})",
                    mask_url_password(url),
                    e.kind()
                )
            })
        };
        let mut addrs = Vec::new();
        for (i, url) in c.redis_sentinels.iter().enumerate() {
            addrs.push(info(&format!("redis_sentinels[{i}]"), url)?.addr().clone());
        }
        let first = c.redis_sentinels.first().map(String::as_str).unwrap_or("");
        let sentinels = Sentinels::new(
            c.redis_sentinels.clone(),
            addrs,
            c.redis_sentinel_master.clone(),
            info("redis_url", &c.redis_url)?,
            info("redis_sentinels[0]", first)?,
            certs,
            c.redis_tls_insecure,
        );
        sentinels.client().map_err(tls_error)?;
        let shown: Vec<String> = c
            .redis_sentinels
            .iter()
            .map(|u| mask_url_password(u))
            .collect();
        return Ok(RedisTarget {
            servers: Servers::Sentinel(sentinels),
            shown: format!(
                "master {:?} of sentinels {}",
                c.redis_sentinel_master,
                shown.join(", ")
            ),
            insecure: c.redis_tls_insecure,
        });
    }
    if c.redis_mode == "cluster" {
        let shown: Vec<String> = c
            .redis_cluster_nodes
            .iter()
            .map(|u| mask_url_password(u))
            .collect();
        let seeds = ClusterSeeds::new(
            c.redis_cluster_nodes.clone(),
            shown.clone(),
            certs,
            c.redis_tls_insecure,
        );
        // Built once here so that a bad URL or TLS file stops the start; it connects later.
        seeds
            .client(None, std::time::Duration::from_secs(1))
            .map_err(tls_error)?;
        return Ok(RedisTarget {
            servers: Servers::Cluster(seeds),
            shown: format!("redis cluster {}", shown.join(", ")),
            insecure: c.redis_tls_insecure,
        });
    }
    let mut url = c.redis_url.clone();
    if c.redis_tls_insecure && !url.contains('#') {
        url.push_str("#insecure");
    }
    let client = match certs {
        None => redis::Client::open(url.as_str()),
        Some(certs) => redis::Client::build_with_tls(url.as_str(), certs),
    }
    .map_err(tls_error)?;
    Ok(RedisTarget {
        servers: Servers::Single(client),
        shown: mask_url_password(&c.redis_url),
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
    fn sentinel_mode_needs_sentinels_and_a_master_name() {
        let e = config("redis_mode = 'sentinel'\nredis_sentinel_master = 'm'")
            .expect_err("no sentinels");
        assert!(e.starts_with("redis_sentinels:"), "{e}");
        let e = config("redis_mode = 'sentinel'\nredis_sentinels = ['redis://:Secret_1@h:26379']")
            .expect_err("no master name");
        assert!(e.starts_with("redis_sentinel_master:"), "{e}");
        let e = config(
            "redis_mode = 'sentinel'\nredis_sentinels = ['http://h']\nredis_sentinel_master = 'm'",
        )
        .expect_err("not a Redis URL");
        assert!(e.starts_with("redis_sentinels[0]:"), "{e}");
        let ok = config(
            "redis_mode = 'sentinel'\nredis_sentinels = ['redis://:Secret_1@h:26379']\nredis_sentinel_master = 'm'",
        )
        .expect("valid");
        let shown = ok.masked_toml();
        assert!(!shown.contains("Secret_1"), "{shown}");
        let t = target(&ok).expect("a sentinel client is built without connecting");
        assert!(matches!(t.servers, Servers::Sentinel(_)));
        assert!(!t.shown.contains("Secret_1"), "{}", t.shown);
    }

    #[test]
    fn cluster_mode_needs_seed_nodes_and_masks_their_passwords() {
        let e = config("redis_mode = 'cluster'").expect_err("no seeds");
        assert!(e.starts_with("redis_cluster_nodes:"), "{e}");
        let e = config(
            "redis_mode = 'cluster'\nredis_cluster_nodes = ['redis://h:1', 'http://u:Secret_1@h']",
        )
        .expect_err("not a Redis URL");
        assert!(
            e.starts_with("redis_cluster_nodes[1]:") && !e.contains("Secret_1"),
            "{e}"
        );
        let e = config("redis_mode = 'clustered'").expect_err("unknown mode");
        assert!(e.contains("\"cluster\""), "{e}");
        let ok = config(
            "redis_mode = 'cluster'\nredis_cluster_nodes = ['redis://:Secret_1@h:7000', 'redis://:Secret_1@h:7001']",
        )
        .expect("valid");
        assert!(!ok.masked_toml().contains("Secret_1"));
        let t = target(&ok).expect("a cluster client is built without connecting");
        assert!(matches!(t.servers, Servers::Cluster(_)));
        assert!(
            !t.shown.contains("Secret_1") && t.shown.contains("h:7001"),
            "{}",
            t.shown
        );
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
