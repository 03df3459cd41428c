//! Apps in a database (`app_store`, docs/app-store.md), against the machine's real PostgreSQL
//! and MariaDB: each test creates its own database with Soketi's `apps` table and drops it.
//! Rows inserted, changed and disabled with SQL reach the server within the poll interval; a
//! database that goes away (a cut TCP proxy in front of it) leaves the apps last read in
//! service, and a node that starts without it serves nothing until the first read.

use std::process::Command;
use std::time::Duration;

use crate::common::process::{metric, scrape};
use crate::common::tcp_proxy::TcpProxy;
use crate::common::*;

/// Soketi's table for PostgreSQL, as its documentation gives it.
const PG_TABLE: &str = "CREATE TABLE apps (
    id varchar(255) PRIMARY KEY, key varchar(255) NOT NULL, secret varchar(255) NOT NULL,
    max_connections integer NOT NULL, enable_client_messages smallint NOT NULL,
    enabled smallint NOT NULL, max_backend_events_per_sec integer NOT NULL,
    max_client_events_per_sec integer NOT NULL, max_read_req_per_sec integer NOT NULL,
    webhooks json, max_presence_members_per_channel smallint,
    max_presence_member_size_in_kb smallint, max_channel_name_length integer,
    max_event_channels_at_once smallint, max_event_name_length integer,
    max_event_payload_in_kb smallint, max_event_batch_size smallint,
    enable_user_authentication smallint NOT NULL)";

/// Soketi's table for MySQL / MariaDB.
const MYSQL_TABLE: &str = "CREATE TABLE apps (
    id varchar(255) NOT NULL, `key` varchar(255) NOT NULL, secret varchar(255) NOT NULL,
    max_connections integer(10) NOT NULL, enable_client_messages tinyint(1) NOT NULL,
    enabled tinyint(1) NOT NULL, max_backend_events_per_sec integer(10) NOT NULL,
    max_client_events_per_sec integer(10) NOT NULL, max_read_req_per_sec integer(10) NOT NULL,
    webhooks json, max_presence_members_per_channel tinyint(1), max_presence_member_size_in_kb tinyint(1),
    max_channel_name_length integer(10), max_event_channels_at_once tinyint(1),
    max_event_name_length integer(10), max_event_payload_in_kb tinyint(1),
    max_event_batch_size tinyint(1), enable_user_authentication tinyint(1) NOT NULL,
    PRIMARY KEY (id))";

pub(crate) const INSERT: &str = "INSERT INTO apps (id, {key}, secret, max_connections, enable_client_messages, enabled, \
    max_backend_events_per_sec, max_client_events_per_sec, max_read_req_per_sec, enable_user_authentication) \
    VALUES ('1', 'k', 's', -1, 1, 1, -1, -1, -1, 0)";

/// A database of its own on the machine's server, dropped at the end.
pub(crate) struct Db {
    kind: &'static str,
    name: String,
}

impl Db {
    pub(crate) fn create(kind: &'static str) -> Db {
        let name = format!(
            "clarion_t{}_{}",
            std::process::id(),
            crate::common::redis::free_port()
        );
        let db = Db { kind, name };
        db.admin(&format!("CREATE DATABASE {}", db.name));
        let table = if kind == "postgres" {
            PG_TABLE
        } else {
            MYSQL_TABLE
        };
        db.sql(table);
        db
    }

    fn run(&self, database: Option<&str>, sql: &str) {
        let out = if self.kind == "postgres" {
            let mut c = Command::new("psql");
            c.args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ]);
            c.args(["-d", database.unwrap_or("postgres")]);
            c.output()
        } else {
            let mut c = Command::new("mariadb");
            c.args(["-h", "127.0.0.1", "-u", "root", "-e", sql]);
            if let Some(d) = database {
                c.arg(d);
            }
            c.output()
        }
        .expect("the database client runs");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn admin(&self, sql: &str) {
        self.run(None, sql);
    }

    pub(crate) fn sql(&self, sql: &str) {
        let key = if self.kind == "postgres" {
            "key"
        } else {
            "`key`"
        };
        self.run(Some(&self.name), &sql.replace("{key}", key));
    }

    pub(crate) fn port(&self) -> u16 {
        if self.kind == "postgres" {
            5432
        } else {
            3306
        }
    }

    fn url(&self, port: u16) -> String {
        if self.kind == "postgres" {
            format!("postgres://postgres@127.0.0.1:{port}/{}", self.name)
        } else {
            format!("mysql://root@127.0.0.1:{port}/{}", self.name)
        }
    }

    pub(crate) fn config(&self, port: u16) -> String {
        format!(
            "app_store = \"{}\"\napp_store_url = \"{}\"\napp_store_poll_seconds = 1\n",
            self.kind,
            self.url(port)
        )
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            self.admin(&format!("DROP DATABASE IF EXISTS {}", self.name))
        });
    }
}

async fn ready_within(s: &TestServer, within: Duration) -> bool {
    crate::common::process::wait_ready(s.addr, within).await
}

/// Whether `key` connects (true) or is refused with `code` (false), within a few seconds of
/// polling.
async fn eventually_refused(s: &TestServer, key: &str, code: u16) {
    for _ in 0..40 {
        let mut c = WsClient::connect(&s.ws_url(key, "?protocol=7")).await;
        let first = c.recv().await;
        if first["event"] == "pusher:error" && decode_data(&first)["code"] == code {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} was not refused with {code}");
}

async fn lifecycle(kind: &'static str) {
    let db = Db::create(kind);
    db.sql(INSERT);
    let s = TestServer::start(&db.config(db.port())).await;
    assert!(
        ready_within(&s, Duration::from_secs(10)).await,
        "ready after the first read"
    );
    let (mut first, _) = s.connect("k").await;
    let (status, _) = s.api(&app1(), "GET", "/apps/1/channels", &[], "").await;
    assert_eq!(status, 200, "the row's secret signs");

    // A new row connects within the poll interval.
    db.sql(&INSERT.replace("'1', 'k', 's'", "'2', 'k2', 's2'"));
    let two = TestApp::new("2", "k2", "s2");
    let mut ok = false;
    for _ in 0..40 {
        if s.api(&two, "GET", "/apps/2/channels", &[], "").await.0 == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "an inserted app is served within the poll interval");

    // A new secret takes effect; a new key closes the old key's connections with 4001.
    db.sql("UPDATE apps SET secret = 's-new' WHERE id = '1'");
    let renewed = TestApp::new("1", "k", "s-new");
    let mut ok = false;
    for _ in 0..40 {
        if s.api(&renewed, "GET", "/apps/1/channels", &[], "").await.0 == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the new secret signs");
    assert_eq!(
        s.api(&app1(), "GET", "/apps/1/channels", &[], "").await.0,
        401
    );
    db.sql("UPDATE apps SET {key} = 'k-new' WHERE id = '1'");
    match first.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4001),
        Closed::NoFrame => panic!("expected 4001"),
    }
    // A disabled app closes its connections with 4003 and refuses new ones.
    let (mut on_two, _) = s.connect("k2").await;
    db.sql("UPDATE apps SET enabled = 0 WHERE id = '2'");
    match on_two.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4003),
        Closed::NoFrame => panic!("expected 4003"),
    }
    eventually_refused(&s, "k2", 4003).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_become_apps_and_changes_apply() {
    lifecycle("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_rows_become_apps_and_changes_apply() {
    lifecycle("mysql").await;
}

/// Waits (up to 10 s: a read gives up after 3 s) until `app_store_unreachable` reads `want`.
async fn unreachable_reads(metrics_port: u16, want: f64) {
    for _ in 0..100 {
        if metric(&scrape(metrics_port).await, "clarion_app_store_unreachable") == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("app_store_unreachable never read {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_database_the_last_apps_stay_and_a_new_node_waits() {
    let db = Db::create("postgres");
    db.sql(INSERT);
    let proxy = TcpProxy::start("127.0.0.1:5432", false).await;
    // Started while the database is unreachable: not ready, and no app is served.
    let (s, metrics_port) = TestServer::start_with_metrics(&db.config(proxy.port)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.raw_http("GET", "/ready", "").await.0, 503);
    eventually_refused(&s, "k", 4001).await;
    unreachable_reads(metrics_port, 1.0).await;
    // The database comes: the apps are read and served.
    proxy.restore().await;
    assert!(
        ready_within(&s, Duration::from_secs(10)).await,
        "ready after the first read"
    );
    let (mut c, _) = s.connect("k").await;
    // It goes away: the node keeps serving and stays ready, the metric says so.
    proxy.cut();
    unreachable_reads(metrics_port, 1.0).await;
    assert_eq!(
        s.raw_http("GET", "/ready", "").await.0,
        200,
        "ready stays 200"
    );
    let (_, _) = s.connect("k").await;
    c.subscribe("orders", Some(""), None).await;
    trigger(&s, &app1(), "orders", "still", "{}").await;
    c.expect_event("still").await;
    // A change made meanwhile applies when it is back.
    db.sql("UPDATE apps SET enabled = 0 WHERE id = '1'");
    proxy.restore().await;
    match c.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4003),
        Closed::NoFrame => panic!("expected 4003"),
    }
    unreachable_reads(metrics_port, 0.0).await;
}
