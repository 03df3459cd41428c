//! The built `clarion` binary as a child process: a clean environment, config files, and the
//! capture of everything it prints (for tests of flags, logs and secrets).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
