//! A Laravel app's `.env` as Clarion's source of its app (docs/laravel.md): `--env-file` serves
//! the `REVERB_APP_*` (else `PUSHER_APP_*`) app on `REVERB_SERVER_PORT`, and `clarion laravel`
//! writes what a Laravel app needs into its `.env`. Fixtures: a Laravel 11 app with Reverb
//! installed and a fresh Laravel 12 app (tests/fixtures/), and the marketplace example.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::process::Process;
use crate::common::*;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn clarion(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clarion"))
        .args(args)
        .env_remove("CLARION_APP_ID")
        .env_remove("CLARION_APP_KEY")
        .env_remove("CLARION_APP_SECRET")
        .output()
        .expect("clarion runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The effective settings `check-config` prints for an empty config and `--env-file path`.
fn effective(env_file: &Path) -> (i32, String, String) {
    let empty = tempfile::NamedTempFile::new().expect("temp config");
    clarion(&[
        "--env-file",
        env_file.to_str().expect("utf-8"),
        "check-config",
        empty.path().to_str().expect("utf-8"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_file_serves_the_reverb_app_on_its_port() {
    let env = fixture("laravel11/.env");
    let (code, out, err) = effective(&env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("port = 8080"), "REVERB_SERVER_PORT: {out}");
    assert!(
        out.contains("id = \"834612\"") && out.contains("key = \"xkdjoqbnscvh1gnb8wej\""),
        "{out}"
    );
    assert!(
        !out.contains("using the development app") && !out.contains("id = \"app-id\""),
        "{out}"
    );
    assert!(
        !out.contains("wbq7ymmfjdzmrv3pwyrp"),
        "the secret is masked: {out}"
    );

    // Served (on a free port: the flag wins over REVERB_SERVER_PORT), client events allowed as
    // Reverb allows Echo's whispers.
    let server = Process::start("", &["--env-file", env.to_str().expect("utf-8")]).await;
    let app = TestApp::new("834612", "xkdjoqbnscvh1gnb8wej", "wbq7ymmfjdzmrv3pwyrp");
    let (status, body) = server.api(&app, "GET", "/apps/834612/channels", "").await;
    assert_eq!(status, 200, "{body}");
    let (mut a, sid_a) = server.connect("xkdjoqbnscvh1gnb8wej").await;
    let (mut b, sid_b) = server.connect("xkdjoqbnscvh1gnb8wej").await;
    join_private(&mut a, &app, &sid_a, "private-chat").await;
    join_private(&mut b, &app, &sid_b, "private-chat").await;
    a.send(serde_json::json!({"event": "client-typing", "channel": "private-chat", "data": {}}))
        .await;
    b.expect_event("client-typing").await;
}

#[test]
fn pusher_credentials_are_taken_when_reverb_is_absent_and_incomplete_sets_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = dir.path().join(".env");
    std::fs::write(
        &env,
        "PUSHER_APP_ID=77\nPUSHER_APP_KEY=pk\nPUSHER_APP_SECRET=ps\nOTHER_PORT=1\n",
    )
    .expect("write");
    let (code, out, err) = effective(&env);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("id = \"77\"") && out.contains("port = 6001"),
        "{out}"
    );
    std::fs::write(&env, "REVERB_APP_ID=1\nREVERB_APP_KEY=\"\"\n").expect("write");
    let (code, _, err) = effective(&env);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("REVERB_APP_KEY, REVERB_APP_SECRET is missing"),
        "{err}"
    );
    std::fs::write(&env, "APP_NAME=x\n").expect("write");
    let (code, _, err) = effective(&env);
    assert_eq!(code, 2);
    assert!(
        err.contains("neither REVERB_APP_ID/KEY/SECRET nor PUSHER_APP_ID/KEY/SECRET"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clarion_laravel_sets_up_a_fresh_laravel_12_app() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fixture("laravel12/.env"), dir.path().join(".env")).expect("copy");
    let app_dir = dir.path().to_str().expect("utf-8");

    let (code, printed, err) = clarion(&["laravel", app_dir]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "BROADCAST_CONNECTION=reverb",
        "REVERB_PORT=6001",
        "VITE_REVERB_APP_KEY=\"${REVERB_APP_KEY}\"",
        "'reverb' => [",
        "clarion --env-file",
    ] {
        assert!(printed.contains(line), "{line} in:\n{printed}");
    }
    let (_, pusher, _) = clarion(&["laravel", app_dir, "--driver", "pusher", "--port", "6002"]);
    assert!(
        pusher.contains("PUSHER_APP_CLUSTER=mt1") && pusher.contains("PUSHER_PORT=6002"),
        "{pusher}"
    );

    let (code, out, err) = clarion(&["laravel", app_dir, "--write"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("set BROADCAST_CONNECTION, "), "{out}");
    let written = std::fs::read_to_string(dir.path().join(".env")).expect("read");
    assert!(
        written.lines().any(|l| l == "BROADCAST_CONNECTION=reverb")
            && !written.lines().any(|l| l == "BROADCAST_CONNECTION=log"),
        "{written}"
    );
    assert!(
        written.contains("APP_NAME=Laravel"),
        "the rest stays: {written}"
    );
    assert!(dir.path().join(".env.clarion-backup").exists());
    let (_, again, _) = clarion(&["laravel", app_dir, "--write"]);
    assert!(again.contains("already set up"), "{again}");

    // Clarion serves the app the .env now names.
    let env = dir.path().join(".env");
    let parsed: std::collections::HashMap<String, String> = written
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let app = TestApp::new(
        &parsed["REVERB_APP_ID"],
        &parsed["REVERB_APP_KEY"],
        &parsed["REVERB_APP_SECRET"],
    );
    let server = Process::start("", &["--env-file", env.to_str().expect("utf-8")]).await;
    let path = format!("/apps/{}/channels", app.id);
    assert_eq!(server.api(&app, "GET", &path, "").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marketplace_example_env_is_served_as_it_is() {
    let env = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/laravel/.env.example");
    let server = Process::start("", &["--env-file", env.to_str().expect("utf-8")]).await;
    let (status, body) = server
        .api(
            &TestApp::new("app-id", "app-key", "app-secret"),
            "GET",
            "/apps/app-id/channels",
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
}
