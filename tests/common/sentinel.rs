//! A real Sentinel setup: a master and a replica (`redis-server` on free ports) watched by three
//! sentinels (`redis-server --sentinel`), with timeouts short enough that killing the master
//! ends in a failover within a few seconds.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::{free_port, Redis};

/// The name the sentinels monitor.
pub const MASTER: &str = "mymaster";

pub struct SentinelSet {
    pub master: Redis,
    pub replica: Redis,
    sentinels: Vec<(u16, Child)>,
    _dir: tempfile::TempDir,
}

fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
    cmd.query(&mut conn)
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl SentinelSet {
    /// Starts the master, the replica (and waits until it is in sync), then three sentinels
    /// (and waits until each knows the replica and the two other sentinels).
    pub fn start() -> SentinelSet {
        let master = Redis::start();
        let m = master.port.to_string();
        let replica = Redis::start_with(&["--replicaof", "127.0.0.1", &m]);
        let r = replica.port;
        wait_until("the replica syncs", Duration::from_secs(10), || {
            query::<String>(r, redis::cmd("INFO").arg("replication"))
                .is_ok_and(|i| i.contains("master_link_status:up"))
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nsentinel monitor {MASTER} 127.0.0.1 {m} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 3000\n\
                     sentinel parallel-syncs {MASTER} 1\n"
                ),
            )
            .expect("write sentinel config");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel");
            sentinels.push((port, child));
        }
        for (port, _) in &sentinels {
            let port = *port;
            wait_until(
                "a sentinel sees the replica and its peers",
                Duration::from_secs(20),
                || {
                    let replicas = query::<Vec<redis::Value>>(
                        port,
                        redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER),
                    );
                    let peers = query::<Vec<redis::Value>>(
                        port,
                        redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER),
                    );
                    replicas.is_ok_and(|r| r.len() == 1) && peers.is_ok_and(|p| p.len() == 2)
                },
            );
        }
        SentinelSet {
            master,
            replica,
            sentinels,
            _dir: dir,
        }
    }

    /// `redis_sentinels` for a Clarion config.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|(port, _)| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// The port of the server the first sentinel names master.
    pub fn master_port(&self) -> Option<u16> {
        let (port, _) = self.sentinels.first()?;
        query::<Option<(String, u16)>>(
            *port,
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER),
        )
        .ok()
        .flatten()
        .map(|(_, p)| p)
    }

    /// Kills the master and waits until the sentinels have promoted the replica.
    pub fn fail_over(&mut self) {
        self.master.stop();
        let replica = self.replica.port;
        wait_until(
            "the sentinels promote the replica",
            Duration::from_secs(30),
            || {
                self.master_port() == Some(replica)
                    && query::<String>(replica, redis::cmd("INFO").arg("replication"))
                        .is_ok_and(|i| i.contains("role:master"))
            },
        );
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
