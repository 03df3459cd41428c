//! The real `clarion` binary as a child process, for tests that need the server in its own
//! address space: its RSS (`VmRSS`) is then the server's alone, it can be sent signals (shutdown,
//! reload) or killed with SIGKILL, and its `/metrics` are scraped over a real port. Also the
//! `/metrics` scraping helpers that in-process tests share.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::redis::free_port;
use super::{api_at, TestApp, WsClient};

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

    /// The config file the process was started with (rewrite it, then SIGHUP, to reload).
    pub fn config_path(&self) -> std::path::PathBuf {
        self._dir.path().join("clarion.toml")
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Kills the process with SIGKILL (nothing of its own cleanup runs) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit code once the process has exited, waiting up to `within`; None if it has not
    /// exited by then (or was killed by a signal).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Connects and reads `connection_established`; returns the client and its socket id.
    pub async fn connect(&self, key: &str) -> (WsClient, String) {
        WsClient::connect_established(&self.ws_url(key)).await
    }

    pub fn ws_url(&self, key: &str) -> String {
        format!(
            "ws://{}/app/{key}?protocol=7&client=js&version=8.4.0",
            self.addr
        )
    }

    /// A signed HTTP API request; returns status and JSON body.
    pub async fn api(&self, app: &TestApp, method: &str, path: &str, body: &str) -> (u16, Value) {
        api_at(self.addr, app, method, path, &[], body).await
    }

    /// The current `/metrics` text.
    pub async fn metrics(&self) -> String {
        scrape(self.metrics_port).await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
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

/// The binary started with `toml` as its config file on free ports (port 0, no metrics),
/// standard error piped and standard output as `stdout` says. The directory holds the config.
pub fn spawn_with_config(toml: &str, stdout: Stdio) -> (tempfile::TempDir, Child) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("clarion.toml");
    std::fs::write(&path, toml).expect("write config");
    let child = Command::new(env!("CARGO_BIN_EXE_clarion"))
        .arg("--config")
        .arg(&path)
        .args(["--host", "127.0.0.1", "--port", "0", "--metrics-port", "0"])
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start clarion");
    (dir, child)
}

/// Runs the binary with `toml` and returns its exit code and standard error; a node still
/// running after 15 s is killed (and reported as code -1).
pub fn run_to_exit(toml: &str) -> (i32, String) {
    let (_dir, mut child) = spawn_with_config(toml, Stdio::null());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    (code, err)
}

/// Polls `/ready` at `addr` until it answers 200; false when `within` passes first.
pub async fn wait_ready(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if super::http_request(addr, "GET", "/ready", "").await.0 == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The next `member_removed` on `observer` (skipping other frames), within the dead-node
/// window a killed node's members take to be reaped; checks that it names `user`.
pub async fn expect_member_removed(observer: &mut WsClient, user: &str) {
    loop {
        let m = observer
            .try_recv(Duration::from_secs(25))
            .await
            .unwrap_or_else(|| panic!("member_removed for {user}"));
        if m["event"] == "pusher_internal:member_removed" {
            assert_eq!(super::decode_data(&m)["user_id"], user, "{m}");
            return;
        }
    }
}
