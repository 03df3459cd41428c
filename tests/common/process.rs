//! The real `clarion` binary as a child process, for tests that need the server in its own
//! address space: its RSS (`VmRSS`) is then the server's alone, and its `/metrics` are scraped
//! over a real port. Also the `/metrics` scraping helpers that in-process tests share.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::redis::free_port;
use super::{http_request, now, signed_query, TestApp};

/// A `clarion` child process on free ports (main and metrics); killed on drop.
pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    pub metrics_port: u16,
    _dir: tempfile::TempDir,
}

impl Process {
    /// Starts the binary with `config` (TOML, without host/port/metrics_port) and extra flags,
    /// and waits until both ports answer.
    pub async fn start(config: &str, flags: &[&str]) -> Process {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clarion.toml");
        std::fs::write(&path, config).expect("write config");
        let port = free_port();
        let metrics_port = free_port();
        let mut args: Vec<String> = vec![
            "--config".into(),
            path.to_str().expect("utf-8 path").into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--metrics-port".into(),
            metrics_port.to_string(),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        let child = Command::new(env!("CARGO_BIN_EXE_clarion"))
            .args(&args)
            .env_remove("CLARION_APP_ID")
            .env_remove("CLARION_APP_KEY")
            .env_remove("CLARION_APP_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clarion");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut p = Process {
            child,
            addr,
            metrics_port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("clarion exited at start: {status}");
            }
            let main_up = tokio::net::TcpStream::connect(addr).await.is_ok();
            let metrics_up = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port))
                .await
                .is_ok();
            if main_up && metrics_up {
                return p;
            }
            assert!(Instant::now() < deadline, "clarion did not start");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident set size in bytes (`VmRSS` of /proc/PID/status).
    pub fn rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kb * 1024
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn ws_url(&self, key: &str) -> String {
        format!(
            "ws://{}/app/{key}?protocol=7&client=js&version=8.4.0",
            self.addr
        )
    }

    /// A signed HTTP API request; returns status and JSON body.
    pub async fn api(&self, app: &TestApp, method: &str, path: &str, body: &str) -> (u16, Value) {
        let query = signed_query(app, method, path, &[], body, now());
        http_request(self.addr, method, &format!("{path}?{query}"), body).await
    }

    /// The current `/metrics` text.
    pub async fn metrics(&self) -> String {
        scrape(self.metrics_port).await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Scrapes `GET /metrics` on `127.0.0.1:port`.
pub async fn scrape(port: u16) -> String {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let (status, text) =
        tokio::time::timeout(super::WAIT, super::http_text(addr, "GET", "/metrics", ""))
            .await
            .expect("metrics in time");
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of one series (`name` or `name{labels}`) in a scrape; 0 when absent (a labelled
/// gauge with no live series is absent).
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Scrapes until every `(series, value)` pair holds, or fails after `within` showing the last
/// values.
pub async fn wait_for_metrics(port: u16, within: Duration, want: &[(&str, f64)]) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = scrape(port).await;
        if want.iter().all(|(s, v)| metric(&text, s) == *v) {
            return text;
        }
        if Instant::now() > deadline {
            let got: Vec<String> = want
                .iter()
                .map(|(s, v)| format!("{s} = {} (want {v})", metric(&text, s)))
                .collect();
            panic!(
                "metrics did not settle within {within:?}: {}",
                got.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
