//! A real `redis-server` per test, on a free port, that a test can stop and start again.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` child on a free port; killed on drop.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    /// Extra `redis-server` arguments (e.g. `--requirepass`), kept for restarts.
    extra: Vec<String>,
    /// Listens with TLS only (`--tls-port`), with the certificates in `extra`.
    tls: bool,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// Starts with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Redis {
        let port = free_port();
        let mut r = Redis {
            port,
            child: None,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            tls: false,
        };
        r.spawn();
        r
    }

    /// Starts listening with TLS only, with the server certificate of `certs`; clients must
    /// present a certificate when `client_certs` is set. `extra` as for `start_with`.
    pub fn start_tls(certs: &super::certs::Certs, client_certs: bool, extra: &[&str]) -> Redis {
        let mut args: Vec<String> = [
            "--tls-cert-file",
            &certs.server_cert,
            "--tls-key-file",
            &certs.server_key,
            "--tls-ca-cert-file",
            &certs.ca,
            "--tls-auth-clients",
            if client_certs { "yes" } else { "no" },
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut r = Redis {
            port: free_port(),
            child: None,
            extra: args,
            tls: true,
        };
        r.spawn();
        r
    }

    pub fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(if self.tls {
                [
                    "--port".to_string(),
                    "0".into(),
                    "--tls-port".into(),
                    self.port.to_string(),
                ]
            } else {
                [
                    "--port".to_string(),
                    self.port.to_string(),
                    "--tls-port".into(),
                    "0".into(),
                ]
            })
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Subscribers of a (non-sharded) pub/sub channel: `PUBSUB NUMSUB`.
    pub fn subscribers(&self, channel: &str) -> i64 {
        let client = redis::Client::open(self.url()).expect("redis url");
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .expect("redis answers");
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query(&mut conn)
            .expect("PUBSUB NUMSUB");
        n
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
