//! The load generator (`clarion-bench`) against the real server, at a small scale: the README's
//! performance table is only as true as what this tool counts, so each scenario the battery uses
//! must report exactly what happened (every delivery counted, none invented).

mod common;
use common::process::Process;

use serde_json::Value;

const CONFIG: &str = r#"
[[apps]]
id = "bench"
key = "bench-key"
secret = "bench-secret"
enable_client_messages = true
max_presence_members_per_channel = 0
max_client_events_per_second = 0
"#;

/// Runs `clarion-bench` against `server` (or no server) and returns its RESULT line.
fn bench(server: Option<&Process>, args: &[&str]) -> Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_clarion-bench"));
    if let Some(p) = server {
        cmd.args(["--host", "127.0.0.1", "--port", &p.addr.port().to_string()])
            .args(["--app-id", "bench", "--key", "bench-key"])
            .args(["--secret", "bench-secret", "--pid", &p.pid().to_string()]);
    }
    let out = cmd.args(args).output().expect("run clarion-bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{text}"));
    serde_json::from_str(line).expect("RESULT is JSON")
}

fn int(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[tokio::test]
async fn fanout_counts_every_delivery_and_its_latency() {
    let server = Process::start(CONFIG, &[]).await;
    // 60 subscribers over 3 channels, 30 events/s for 2 s: each event reaches 20 subscribers.
    // The 9,000-byte payload makes frames larger than the client's first read buffer (8 KiB).
    for payload in ["100", "9000"] {
        let r = bench(
            Some(&server),
            &[
                "fanout",
                "--subscribers",
                "60",
                "--channels",
                "3",
                "--rate",
                "30",
                "--duration",
                "2",
                "--payload",
                payload,
            ],
        );
        assert_eq!(int(&r, "subscribers"), 60, "{r}");
        assert_eq!(int(&r, "published"), 60, "{r}");
        assert_eq!(int(&r, "publish_errors"), 0, "{r}");
        assert_eq!(int(&r, "expected"), 60 * 20, "{r}");
        assert_eq!(int(&r, "received"), 60 * 20, "{r}");
        assert_eq!(int(&r, "lost"), 0, "{r}");
        assert_eq!(r["latency"]["samples"].as_u64(), Some(60 * 20), "{r}");
        assert!(r["server_cpu_seconds"].is_number(), "{r}");
    }
}

#[tokio::test]
async fn idle_holds_every_connection_and_measures_the_server() {
    let server = Process::start(CONFIG, &[]).await;
    let r = bench(
        Some(&server),
        &[
            "idle",
            "--connections",
            "300",
            "--channels",
            "10",
            "--concurrency",
            "50",
        ],
    );
    assert_eq!(int(&r, "connected"), 300, "{r}");
    assert_eq!(int(&r, "failures"), 0, "{r}");
    assert!(r["connect_rate"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    assert!(
        r["rss_per_connection_bytes"].as_f64().unwrap_or(0.0) > 0.0,
        "{r}"
    );
}

#[test]
fn write_floor_completes_every_round_without_a_server() {
    for (extra, per_round) in [
        (&[][..], 40),
        (
            &[
                "--per-round",
                "10",
                "--writers",
                "2",
                "--congestion",
                "reno",
                "--reader-threads",
                "2",
            ][..],
            10,
        ),
    ] {
        let mut args = vec![
            "write-floor",
            "--sockets",
            "40",
            "--rate",
            "20",
            "--duration",
            "1",
        ];
        args.extend_from_slice(extra);
        let r = bench(None, &args);
        assert_eq!(int(&r, "rounds"), 20, "{r}");
        assert_eq!(int(&r, "per_round"), per_round, "{r}");
        assert_eq!(int(&r, "incomplete_rounds"), 0, "{r}");
        assert_eq!(int(&r, "write_errors"), 0, "{r}");
        assert!(r["round_ms"]["p99"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
        // The second run's reader is a two-worker runtime, and it drained every round.
        let readers = if extra.is_empty() { 1 } else { 2 };
        assert_eq!(int(&r, "reader_threads"), readers, "{r}");
    }
}
