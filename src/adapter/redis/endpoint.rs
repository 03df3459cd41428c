//! Which Redis server the adapter talks to, and the connection to it.
//!
//! With one fixed server (`redis_mode = "single"`) this never changes. With Sentinel, the
//! sentinels name the master: the node asks them at start and at every liveness tick, and when
//! the answer changes (a failover) it replaces its command connection, makes the bus listener
//! reconnect, and re-asserts its state on the new master, as after a Redis restart. Between
//! the failure and the switch, calls fail and the node serves locally (module doc of `redis`).
//!
//! With Redis Cluster (`redis_mode = "cluster"`) the node connects to the seeds at the first
//! tick (and retries at each until it succeeds); from then on the cluster connection follows
//! the topology by itself: it routes by slot, follows `MOVED`/`ASK`, reconnects, and
//! re-subscribes the bus's sharded channels on the masters that own them (`shard_bus`).

use std::sync::RwLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::sentinel::SentinelClient;
use redis::{ConnectionAddr, RedisResult};
use tokio::sync::watch;

use super::call::CALL_TIMEOUT;
use super::conn::Conn;
use crate::net::redis_servers::Servers;

/// What a Redis Cluster pushes to the node: the bus's sharded messages and confirmations.
pub type Pushes = tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>;

/// How the node finds its Redis.
enum Finder {
    Fixed(redis::Client),
    /// The client asks the sentinels in order; it caches their connections, hence the lock.
    Sentinels {
        master: String,
        client: tokio::sync::Mutex<SentinelClient>,
    },
    /// A Redis Cluster; connecting is serialised so that a slow seed is not asked twice.
    Cluster {
        client: ClusterClient,
        connecting: tokio::sync::Mutex<()>,
    },
}

/// The server in use (none for a cluster) and a connection to it.
struct Current {
    addr: Option<ConnectionAddr>,
    conn: Conn,
}

pub struct Endpoint {
    finder: Finder,
    current: RwLock<Option<Current>>,
    /// Bumped when the master changes, so the bus listener drops its subscription and
    /// subscribes on the new master.
    moved: watch::Sender<u64>,
    /// A cluster's pushes, until the sharded bus listener takes them.
    pushes: std::sync::Mutex<Option<Pushes>>,
}

fn manager(client: redis::Client) -> RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CALL_TIMEOUT))
        .set_response_timeout(Some(CALL_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_lazy_with_config(client, config)
}

impl Endpoint {
    /// For a fixed server the connection exists at once (it connects lazily); with Sentinel it
    /// exists once the sentinels have named a master (`follow`).
    pub fn new(servers: &Servers) -> RedisResult<Endpoint> {
        let mut pushes = None;
        let (finder, current) = match servers {
            Servers::Single(client) => {
                let current = Current {
                    addr: Some(client.get_connection_info().addr().clone()),
                    conn: Conn::Single(manager(client.clone())?),
                };
                (Finder::Fixed(client.clone()), Some(current))
            }
            Servers::Sentinel(s) => (
                Finder::Sentinels {
                    master: s.master.clone(),
                    client: tokio::sync::Mutex::new(s.client()?),
                },
                None,
            ),
            Servers::Cluster(seeds) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                pushes = Some(rx);
                let finder = Finder::Cluster {
                    client: seeds.client(Some(tx), CALL_TIMEOUT)?,
                    connecting: tokio::sync::Mutex::new(()),
                };
                (finder, None)
            }
        };
        Ok(Endpoint {
            finder,
            current: RwLock::new(current),
            moved: watch::channel(0).0,
            pushes: std::sync::Mutex::new(pushes),
        })
    }

    /// A cluster's pushes (once; `None` for other kinds of Redis).
    pub fn take_pushes(&self) -> Option<Pushes> {
        crate::sync::lock(&self.pushes).take()
    }

    /// Whether the node is on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.finder, Finder::Cluster { .. })
    }

    /// Whether the node must find its server at each tick (Sentinel; a cluster until it has
    /// connected).
    pub fn discovers(&self) -> bool {
        !matches!(self.finder, Finder::Fixed(_))
    }

    /// What `follow` does, for the health log.
    pub fn finding(&self) -> &'static str {
        match self.finder {
            Finder::Cluster { .. } => "connecting to the redis cluster (redis_cluster_nodes)",
            _ => "asking the sentinels for the master",
        }
    }

    /// The command connection to the current server, if one is known.
    pub fn conn(&self) -> Option<Conn> {
        crate::sync::read(&self.current)
            .as_ref()
            .map(|c| c.conn.clone())
    }

    /// A client for the server to use now: the fixed one, or the master the sentinels name.
    pub async fn client(&self) -> RedisResult<redis::Client> {
        match &self.finder {
            Finder::Fixed(client) => Ok(client.clone()),
            Finder::Cluster { .. } => Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a Redis Cluster has no single server",
            ))),
            Finder::Sentinels { client, .. } => {
                let mut sentinels = client.lock().await;
                match tokio::time::timeout(CALL_TIMEOUT * 3, sentinels.async_get_client()).await {
                    Ok(answer) => answer,
                    Err(_) => Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "no sentinel answered in time",
                    ))),
                }
            }
        }
    }

    /// Asks the sentinels which server is master and switches to it if it moved; true when
    /// it did (the caller re-asserts its state there). A fixed server never moves.
    pub async fn follow(&self) -> RedisResult<bool> {
        if let Finder::Cluster { client, connecting } = &self.finder {
            return self.connect_cluster(client, connecting).await;
        }
        let Finder::Sentinels { master, .. } = &self.finder else {
            return Ok(false);
        };
        let client = self.client().await?;
        let addr = client.get_connection_info().addr().clone();
        let same = crate::sync::read(&self.current)
            .as_ref()
            .is_some_and(|c| c.addr.as_ref() == Some(&addr));
        if same {
            return Ok(false);
        }
        let conn = Conn::Single(manager(client)?);
        tracing::warn!(master = %master, address = %addr, "redis sentinel: following the master at a new address");
        *crate::sync::write(&self.current) = Some(Current {
            addr: Some(addr),
            conn,
        });
        self.moved.send_modify(|n| *n += 1);
        Ok(true)
    }

    /// Connects to the cluster if not connected yet; true when it just did.
    async fn connect_cluster(
        &self,
        client: &ClusterClient,
        connecting: &tokio::sync::Mutex<()>,
    ) -> RedisResult<bool> {
        let _one = connecting.lock().await;
        if crate::sync::read(&self.current).is_some() {
            return Ok(false);
        }
        let conn = match tokio::time::timeout(CALL_TIMEOUT * 3, client.get_async_connection()).await
        {
            Ok(conn) => conn?,
            Err(_) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "no seed node answered in time",
                )))
            }
        };
        tracing::info!("redis cluster: connected");
        *crate::sync::write(&self.current) = Some(Current {
            addr: None,
            conn: Conn::Cluster(conn),
        });
        Ok(true)
    }

    /// Changes each time the master moves.
    pub fn moves(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }
}
