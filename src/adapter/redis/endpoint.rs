//! Which Redis server the adapter talks to, and the connection to it.
//!
//! With one fixed server (`redis_mode = "single"`) this never changes. With Sentinel, the
//! sentinels name the master: the node asks them at start and at every liveness tick, and when
//! the answer changes (a failover) it replaces its command connection, makes the bus listener
//! reconnect, and re-asserts its state on the new master, as after a Redis restart. Between
//! the failure and the switch, calls fail and the node serves locally (module doc of `redis`).

use std::sync::RwLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::SentinelClient;
use redis::{ConnectionAddr, RedisResult};
use tokio::sync::watch;

use super::call::CALL_TIMEOUT;
use crate::net::redis_servers::Servers;

/// How the node finds its Redis.
enum Finder {
    Fixed(redis::Client),
    /// The client asks the sentinels in order; it caches their connections, hence the lock.
    Sentinels {
        master: String,
        client: tokio::sync::Mutex<SentinelClient>,
    },
}

/// The server in use and a connection to it.
struct Current {
    addr: ConnectionAddr,
    conn: ConnectionManager,
}

pub struct Endpoint {
    finder: Finder,
    current: RwLock<Option<Current>>,
    /// Bumped when the master changes, so the bus listener drops its subscription and
    /// subscribes on the new master.
    moved: watch::Sender<u64>,
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
        let (finder, current) = match servers {
            Servers::Single(client) => {
                let current = Current {
                    addr: client.get_connection_info().addr().clone(),
                    conn: manager(client.clone())?,
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
        };
        Ok(Endpoint {
            finder,
            current: RwLock::new(current),
            moved: watch::channel(0).0,
        })
    }

    /// Whether the server can change under the node (Sentinel).
    pub fn follows_sentinels(&self) -> bool {
        matches!(self.finder, Finder::Sentinels { .. })
    }

    /// The command connection to the current server, if one is known.
    pub fn conn(&self) -> Option<ConnectionManager> {
        crate::sync::read(&self.current)
            .as_ref()
            .map(|c| c.conn.clone())
    }

    /// A client for the server to use now: the fixed one, or the master the sentinels name.
    pub async fn client(&self) -> RedisResult<redis::Client> {
        match &self.finder {
            Finder::Fixed(client) => Ok(client.clone()),
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
        let Finder::Sentinels { master, .. } = &self.finder else {
            return Ok(false);
        };
        let client = self.client().await?;
        let addr = client.get_connection_info().addr().clone();
        let same = crate::sync::read(&self.current)
            .as_ref()
            .is_some_and(|c| c.addr == addr);
        if same {
            return Ok(false);
        }
        let conn = manager(client)?;
        tracing::warn!(master = %master, address = %addr, "redis sentinel: following the master at a new address");
        *crate::sync::write(&self.current) = Some(Current { addr, conn });
        self.moved.send_modify(|n| *n += 1);
        Ok(true)
    }

    /// Changes each time the master moves.
    pub fn moves(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }
}
