//! The built `clarion` binary as a child process: a clean environment, config files, and the
//! capture of everything it prints (for tests of flags, logs and secrets).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_clarion");

/// A command for the binary with a clean `CLARION_*` environment (so variables set where the
/// tests run cannot change what is tested) and the given `RUST_LOG`.
pub fn clarion(rust_log: &str) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CLARION_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("RUST_LOG", rust_log);
    cmd.stdin(Stdio::null());
    cmd
}

/// Writes `text` to a fresh temporary `.toml` file.
pub fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    f.write_all(text.as_bytes()).expect("write config");
    f.flush().expect("flush config");
    f
}

/// Copies everything `pipe` yields into `into`, on a thread, until the pipe closes.
pub fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let (Ok(mut out), Some(read)) = (into.lock(), buf.get(..n)) {
                        out.extend_from_slice(read);
                    }
                }
            }
        }
    })
}

/// A running `clarion` child whose stdout and stderr are collected into one buffer in the
/// background. Dropping it kills the process and reaps it.
pub struct Captured {
    pub child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Captured {
    pub fn spawn(mut cmd: Command) -> Captured {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn clarion");
        let output = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), output.clone()),
            collect(child.stderr.take().expect("stderr"), output.clone()),
        ];
        Captured {
            child,
            output,
            readers,
        }
    }

    /// Everything the process has printed so far.
    pub fn output(&self) -> String {
        let bytes = self.output.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits until the server logs "clarion listening" and returns the address in that line
    /// (`None` if it names none this can read). Panics with everything the process printed if
    /// it exits first or does not get there `within`.
    pub fn wait_listening(&mut self, within: Duration) -> Option<SocketAddr> {
        let deadline = Instant::now() + within;
        loop {
            let out = self.output();
            if out.contains("clarion listening") {
                return listening_addr(&out);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Give the reader threads a moment to drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "clarion exited with {status} before listening; output:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "clarion did not log \"clarion listening\" within {within:?}; output:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, waits for the exit, and returns everything the process wrote.
    pub fn stop(mut self, within: Duration) -> String {
        // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped yet.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            assert!(
                Instant::now() < deadline,
                "clarion did not stop after SIGTERM:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.output()
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the "clarion listening" log line: the `addr` field of a JSON line, or the
/// `127.0.0.1:PORT` of a text line.
pub fn listening_addr(output: &str) -> Option<SocketAddr> {
    let line = output.lines().find(|l| l.contains("clarion listening"))?;
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        return v["fields"]["addr"].as_str()?.parse().ok();
    }
    let at = line.find("127.0.0.1:")? + "127.0.0.1:".len();
    let port: String = line
        .get(at..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some(SocketAddr::from(([127, 0, 0, 1], port.parse().ok()?)))
}
