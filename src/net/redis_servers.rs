//! Where the cluster's Redis is, as a connection needs it: one fixed server, the sentinels
//! to ask for the master, or the seed nodes of a Redis Cluster. Built from the configuration
//! (`config`), used by the Redis adapter.

use std::time::Duration;

/// One fixed server, or whichever server the sentinels name master now.
// Built once at start and kept in one place: the size of its variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Servers {
    /// A client for `redis_url`, with the CA and client certificate loaded when given.
    Single(redis::Client),
    /// `redis_mode = "sentinel"`.
    Sentinel(Sentinels),
    /// `redis_mode = "cluster"`.
    Cluster(ClusterSeeds),
}

/// The seed nodes of a Redis Cluster (`redis_cluster_nodes`), with the user, password and
/// scheme each URL carries and the TLS files of the configuration.
#[derive(Clone)]
pub struct ClusterSeeds {
    urls: Vec<String>,
    /// The URLs with their passwords masked, for messages.
    pub shown: Vec<String>,
    certs: Option<redis::TlsCertificates>,
    insecure: bool,
}

impl ClusterSeeds {
    pub fn new(
        urls: Vec<String>,
        shown: Vec<String>,
        certs: Option<redis::TlsCertificates>,
        insecure: bool,
    ) -> ClusterSeeds {
        ClusterSeeds {
            urls,
            shown,
            certs,
            insecure,
        }
    }

    /// A client for the cluster (it connects when asked to). `pushes` receives what the
    /// cluster pushes, sharded pub/sub messages included, over RESP3; `timeout` bounds each
    /// connection attempt and each answer.
    pub fn client(
        &self,
        pushes: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
        timeout: Duration,
    ) -> redis::RedisResult<redis::cluster::ClusterClient> {
        let mut b = redis::cluster::ClusterClientBuilder::new(self.urls.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(3);
        if self.urls.iter().any(|u| u.starts_with("rediss://")) {
            b = b.tls(if self.insecure {
                redis::TlsMode::Insecure
            } else {
                redis::TlsMode::Secure
            });
            if let (Some(certs), false) = (&self.certs, self.insecure) {
                b = b.certs(certs.clone());
            }
        }
        if let Some(tx) = pushes {
            b = b
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(tx);
        }
        b.build()
    }
}

/// How to ask the sentinels for the master, and how to connect to it once named: with the
/// user, password, database and scheme of `redis_url` (its host and port are not used).
#[derive(Clone)]
pub struct Sentinels {
    urls: Vec<String>,
    addrs: Vec<redis::ConnectionAddr>,
    /// The master name the sentinels monitor.
    pub master: String,
    to_master: redis::ConnectionInfo,
    to_sentinels: redis::ConnectionInfo,
    certs: Option<redis::TlsCertificates>,
    insecure: bool,
}

impl Sentinels {
    /// The sentinels (`urls`, parsed into `addrs`) and how to reach the master they name.
    pub fn new(
        urls: Vec<String>,
        addrs: Vec<redis::ConnectionAddr>,
        master: String,
        to_master: redis::ConnectionInfo,
        to_sentinels: redis::ConnectionInfo,
        certs: Option<redis::TlsCertificates>,
        insecure: bool,
    ) -> Sentinels {
        Sentinels {
            urls,
            addrs,
            master,
            to_master,
            to_sentinels,
            certs,
            insecure,
        }
    }

    /// A plain client for each sentinel, to ask it about the master name directly.
    pub fn each_sentinel(&self) -> Vec<redis::RedisResult<redis::Client>> {
        self.urls
            .iter()
            .map(|url| match (&self.certs, url.starts_with("rediss://")) {
                (Some(certs), true) => redis::Client::build_with_tls(url.as_str(), certs.clone()),
                _ => redis::Client::open(url.as_str()),
            })
            .collect()
    }

    /// A client that asks the sentinels, in order, for the current master.
    pub fn client(&self) -> redis::RedisResult<redis::sentinel::SentinelClient> {
        use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
        let mode = if self.insecure {
            redis::TlsMode::Insecure
        } else {
            redis::TlsMode::Secure
        };
        let mut b = SentinelClientBuilder::new(
            self.addrs.clone(),
            &self.master,
            SentinelServerType::Master,
        )?;
        let m = self.to_master.redis_settings();
        b = b.set_client_to_redis_db(m.db());
        if let Some(user) = m.username() {
            b = b.set_client_to_redis_username(user);
        }
        if let Some(password) = m.password() {
            b = b.set_client_to_redis_password(password);
        }
        if matches!(self.to_master.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            b = b.set_client_to_redis_tls_mode(mode);
            if let (Some(certs), false) = (&self.certs, self.insecure) {
                b = b.set_client_to_redis_certificates(certs.clone());
            }
        }
        let s = self.to_sentinels.redis_settings();
        if let Some(user) = s.username() {
            b = b.set_client_to_sentinel_username(user);
        }
        if let Some(password) = s.password() {
            b = b.set_client_to_sentinel_password(password);
        }
        if matches!(
            self.to_sentinels.addr(),
            redis::ConnectionAddr::TcpTls { .. }
        ) {
            b = b.set_client_to_sentinel_tls_mode(mode);
            if let (Some(certs), false) = (&self.certs, self.insecure) {
                b = b.set_client_to_sentinel_certificates(certs.clone());
            }
        }
        b.build()
    }
}
