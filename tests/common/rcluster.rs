//! A real three-master Redis Cluster: three `redis-server --cluster-enabled yes` on free ports
//! (each with its cluster bus port, port + 10000, free too), joined by
//! `redis-cli --cluster create`, with or without replicas. Killed on drop.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::free_port;

pub struct RedisCluster {
    pub ports: Vec<u16>,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
    cmd.query(&mut conn)
}

/// A port whose cluster bus port (port + 10000) is free too: the bus port is taken from the
/// ephemeral range, which starts above 10000 + 1024.
fn free_cluster_port() -> u16 {
    for _ in 0..100 {
        let bus = free_port();
        let Some(port) = bus.checked_sub(10000).filter(|p| *p > 1024) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair for a cluster node");
}

impl RedisCluster {
    /// Starts the three masters, creates the cluster and waits until every node reports it ok.
    pub fn start() -> RedisCluster {
        RedisCluster::start_with_replicas(0)
    }

    /// Three masters with `replicas` replicas each.
    pub fn start_with_replicas(replicas: usize) -> RedisCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ports = Vec::new();
        let mut children = Vec::new();
        while ports.len() < 3 * (1 + replicas) {
            let port = free_cluster_port();
            if ports.contains(&port) {
                continue;
            }
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .arg("--cluster-config-file")
                .arg(dir.path().join(format!("nodes-{port}.conf")))
                .arg("--dir")
                .arg(dir.path())
                .args(["--save", "", "--appendonly", "no", "--tls-port", "0"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (apt-get install redis-server)");
            children.push(child);
            ports.push(port);
        }
        let set = RedisCluster {
            ports,
            children,
            _dir: dir,
        };
        for port in &set.ports {
            wait_until("a cluster node listens", Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok()
            });
        }
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(set.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create failed");
        for port in &set.ports {
            let port = *port;
            wait_until("the cluster is ok", Duration::from_secs(20), || {
                query::<String>(port, redis::cmd("CLUSTER").arg("INFO")).is_ok_and(|i| {
                    i.contains("cluster_state:ok")
                        && i.contains(&format!("cluster_known_nodes:{}", 3 * (1 + replicas)))
                })
            });
        }
        // A replica that has not synced yet would refuse to take over.
        for port in &set.ports {
            let port = *port;
            wait_until("the replicas sync", Duration::from_secs(20), || {
                query::<String>(port, redis::cmd("INFO").arg("replication"))
                    .is_ok_and(|i| i.contains("role:master") || i.contains("master_link_status:up"))
            });
        }
        set
    }

    /// Kills the master that owns `key`'s slot (SIGKILL) and waits until a replica took its
    /// slots over; returns the new master's port.
    pub fn fail_over_master_of(&mut self, key: &str) -> u16 {
        let old = self.master_of(key);
        let i = self
            .ports
            .iter()
            .position(|p| *p == old)
            .expect("a node of ours");
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
        let alive = *self
            .ports
            .iter()
            .find(|p| **p != old)
            .expect("another node");
        let mut new = 0;
        wait_until("a replica takes over", Duration::from_secs(30), || {
            new = self.master_of_via(alive, key);
            new != old
                && new != 0
                && query::<String>(alive, redis::cmd("CLUSTER").arg("INFO"))
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
        });
        new
    }

    /// `redis_cluster_nodes` for a Clarion config (every master as a seed).
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The port of the master that owns `key`'s slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self.ports[0];
        let slot: i64 = query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).expect("slot");
        owner(port, slot).expect("an owner for every slot")
    }

    /// How many keys the master on `port` holds.
    pub fn keys_on(&self, port: u16) -> i64 {
        query(port, &redis::cmd("DBSIZE")).unwrap_or(0)
    }
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl RedisCluster {
    /// The node id of the master on `port`.
    pub fn node_id(&self, port: u16) -> String {
        query(port, redis::cmd("CLUSTER").arg("MYID")).expect("CLUSTER MYID")
    }

    /// Moves the slot of `key` (and every key in it) from its master to the master on `to`,
    /// the way `redis-cli --cluster reshard` does: importing/migrating, MIGRATE, then the new
    /// owner announced to every master.
    pub fn move_slot_of(&self, key: &str, to: u16) {
        let from = self.master_of(key);
        assert_ne!(from, to, "the slot is on {to} already");
        let slot: i64 = query(from, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).expect("slot");
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let setslot = |port: u16, state: &str, id: &str| {
            query::<()>(
                port,
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg(state)
                    .arg(id),
            )
            .expect("CLUSTER SETSLOT");
        };
        setslot(to, "IMPORTING", &from_id);
        setslot(from, "MIGRATING", &to_id);
        loop {
            let keys: Vec<String> = query(
                from,
                redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(slot)
                    .arg(100),
            )
            .expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            query::<()>(
                from,
                redis::cmd("MIGRATE")
                    .arg("127.0.0.1")
                    .arg(to)
                    .arg("")
                    .arg(0)
                    .arg(5000)
                    .arg("KEYS")
                    .arg(&keys),
            )
            .expect("MIGRATE");
        }
        for port in [to, from] {
            setslot(port, "NODE", &to_id);
        }
        for port in &self.ports {
            wait_until(
                "every master knows the new owner",
                Duration::from_secs(10),
                || self.master_of_via(*port, key) == to,
            );
        }
    }

    /// The owner of `key`'s slot as the master on `port` sees it.
    fn master_of_via(&self, port: u16, key: &str) -> u16 {
        let slot: i64 = query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).unwrap_or(-1);
        owner(port, slot).unwrap_or(0)
    }
}

/// The port of the master owning `slot`, as the node on `port` sees it: `CLUSTER SLOTS` lists
/// ranges as start, end, then the master as [ip, port, id, …], then its replicas.
fn owner(port: u16, slot: i64) -> Option<u16> {
    use redis::Value;
    let ranges: Vec<Vec<Value>> = query(port, redis::cmd("CLUSTER").arg("SLOTS")).ok()?;
    ranges
        .into_iter()
        .find_map(|r| match (r.first(), r.get(1), r.get(2)) {
            (Some(Value::Int(from)), Some(Value::Int(to)), Some(Value::Array(master)))
                if (*from..=*to).contains(&slot) =>
            {
                match master.get(1) {
                    Some(Value::Int(p)) => Some(*p as u16),
                    _ => None,
                }
            }
            _ => None,
        })
}

impl RedisCluster {
    /// `(port, subscribers)` of a sharded channel on every node that answers (diagnostics).
    pub fn shard_subscribers(&self, channel: &str) -> Vec<(u16, i64)> {
        self.ports
            .iter()
            .filter_map(|p| {
                query::<(String, i64)>(*p, redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(channel))
                    .ok()
                    .map(|(_, n)| (*p, n))
            })
            .collect()
    }
}
