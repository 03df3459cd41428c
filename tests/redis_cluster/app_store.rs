//! An admin API change reaches every node within a second even with MySQL/MariaDB, which has no
//! LISTEN/NOTIFY: the nodes share a Redis and the admin API bumps a counter they read twice a
//! second (docs/admin-api.md). Real MariaDB (a database made for the test), real Redis, two
//! nodes polling their store only every 60 s.

use std::process::Command;
use std::time::Duration;

use super::common::admin::admin;
use super::common::process::wait_ready;
use super::common::redis::{free_port, Redis};
use super::common::*;

const TOKEN: &str = "admin-token-0123456789";

fn mariadb(sql: &str, db: Option<&str>) {
    let mut c = Command::new("mariadb");
    c.args(["-h", "127.0.0.1", "-u", "root", "-e", sql]);
    if let Some(d) = db {
        c.arg(d);
    }
    let out = c.output().expect("the mariadb client");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Db(String);

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            mariadb(&format!("DROP DATABASE IF EXISTS {}", self.0), None)
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_store_change_reaches_every_node_within_a_second() {
    let db = Db(format!("clarion_rc_{}_{}", std::process::id(), free_port()));
    mariadb(&format!("CREATE DATABASE {}", db.0), None);
    mariadb(
        "CREATE TABLE apps (id varchar(255) NOT NULL, `key` varchar(255) NOT NULL, secret varchar(255) NOT NULL,
         max_connections integer NOT NULL, enable_client_messages tinyint(1) NOT NULL, enabled tinyint(1) NOT NULL,
         max_backend_events_per_sec integer NOT NULL, max_client_events_per_sec integer NOT NULL,
         max_read_req_per_sec integer NOT NULL, webhooks json, enable_user_authentication tinyint(1) NOT NULL,
         PRIMARY KEY (id))",
        Some(&db.0),
    );
    let redis = Redis::start();
    let common = format!(
        "adapter = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"apps1\"\napp_store = \"mysql\"\napp_store_url = \"mysql://root@127.0.0.1:3306/{}\"\napp_store_poll_seconds = 60\n",
        redis.url(),
        db.0
    );
    let port = free_port();
    let a = TestServer::start(&format!(
        "admin_port = {port}\nadmin_token = \"{TOKEN}\"\n{common}"
    ))
    .await;
    let b = TestServer::start(&common).await;
    for s in [&a, &b] {
        assert!(wait_ready(s.addr, Duration::from_secs(10)).await, "ready");
    }
    // Both nodes have read the counter once: what follows is a change, not a first look.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, created) = admin(
        port,
        "POST",
        "/apps",
        Some(TOKEN),
        r#"{"id":"m1","key":"mk1"}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let app = TestApp::new("m1", "mk1", created["secret"].as_str().expect("secret"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut served = false;
    while tokio::time::Instant::now() < deadline {
        if b.api(&app, "GET", "/apps/m1/channels", &[], "").await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "node B serves the new app within a second");
}
