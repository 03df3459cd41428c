//! The admin API (docs/admin-api.md) on its own port, over real HTTP with a bearer token,
//! writing through a real PostgreSQL app store (tests/functional/app_store.rs makes the
//! database): the token is required, invalid apps are refused by field, the file store refuses
//! writes, and a rotated secret leaves the old one valid for the grace period.

use std::time::Duration;

use serde_json::json;

use super::app_store::{Db, INSERT};
use crate::common::admin::admin;
use crate::common::redis::free_port;
use crate::common::*;

const TOKEN: &str = "admin-token-0123456789";

async fn with_admin(extra: &str) -> (TestServer, u16) {
    let port = free_port();
    let s = TestServer::start(&format!(
        "admin_port = {port}\nadmin_token = \"{TOKEN}\"\n{extra}"
    ))
    .await;
    (s, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_and_the_file_store_refuses_writes() {
    let (_s, port) = with_admin("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n").await;
    let (status, body) = admin(port, "GET", "/apps", None, "").await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = admin(port, "GET", "/apps", Some("admin-token-wrong-00000"), "").await;
    assert_eq!(status, 401);
    let (status, body) = admin(port, "GET", "/apps", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["apps"][0]["id"], "1");
    let (status, body) = admin(
        port,
        "POST",
        "/apps",
        Some(TOKEN),
        r#"{"id":"2","key":"k2"}"#,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("app_store = \"file\""),
        "{body}"
    );
    let (status, _) = admin(port, "POST", "/apps/1/disable", Some(TOKEN), "").await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_created_changed_and_disabled_through_the_table() {
    let db = Db::create("postgres");
    let (s, port) = with_admin(&db.config(db.port())).await;
    crate::common::process::wait_ready(s.addr, Duration::from_secs(10)).await;

    // Refused, with the field named: a key with ':', an unknown field, a switch Soketi's table
    // cannot keep.
    for (body, named) in [
        (r#"{"id":"7","key":"k:7"}"#, "app.key"),
        (r#"{"id":"7","key":"k7","colour":"red"}"#, "colour"),
        (
            r#"{"id":"7","key":"k7","enable_watchlist_events":true}"#,
            "enable_watchlist_events",
        ),
    ] {
        let (status, answer) = admin(port, "POST", "/apps", Some(TOKEN), body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap_or("");
        assert!(error.contains(named), "{body}: {answer}");
    }

    let (status, created) = admin(
        port,
        "POST",
        "/apps",
        Some(TOKEN),
        r#"{"id":"7","key":"k7","max_connections":50}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"]
        .as_str()
        .expect("a generated secret")
        .to_string();
    assert_eq!(secret.len(), 32);
    // Served by the time the answer came.
    let (mut c, _) = s.connect("k7").await;
    let app = TestApp::new("7", "k7", &secret);
    assert_eq!(s.api(&app, "GET", "/apps/7/channels", &[], "").await.0, 200);
    let (status, _) = admin(
        port,
        "POST",
        "/apps",
        Some(TOKEN),
        r#"{"id":"8","key":"k7"}"#,
    )
    .await;
    assert_eq!(status, 409, "a key in use");

    let (status, body) = admin(
        port,
        "PATCH",
        "/apps/7",
        Some(TOKEN),
        r#"{"enable_client_messages":true}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enable_client_messages"], true);
    assert_eq!(body["max_connections"], 50, "the rest stays");
    let (_, listed) = admin(port, "GET", "/apps/7", Some(TOKEN), "").await;
    assert_eq!(listed["enable_client_messages"], true, "{listed}");

    let (status, _) = admin(port, "POST", "/apps/7/disable", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    match c.closed().await {
        Closed::Code(code, _) => assert_eq!(code, 4003),
        Closed::NoFrame => panic!("expected 4003"),
    }
    let (status, body) = admin(port, "POST", "/apps/7/enable", Some(TOKEN), "").await;
    assert_eq!((status, &body["enabled"]), (200, &json!(true)), "{body}");
    s.connect("k7").await;
    let (status, _) = admin(port, "PATCH", "/apps/nope", Some(TOKEN), "{}").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_leaves_the_old_one_valid_for_the_grace_period() {
    let db = Db::create("postgres");
    db.sql(INSERT);
    let (s, port) = with_admin(&db.config(db.port())).await;
    crate::common::process::wait_ready(s.addr, Duration::from_secs(10)).await;
    let (status, body) = admin(port, "POST", "/apps/1/rotate-secret", Some(TOKEN), "").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("ALTER TABLE apps ADD COLUMN previous_secret"),
        "{body}"
    );
    db.sql("ALTER TABLE apps ADD COLUMN previous_secret varchar(255), ADD COLUMN previous_secret_until bigint");

    let (status, body) = admin(
        port,
        "POST",
        "/apps/1/rotate-secret",
        Some(TOKEN),
        r#"{"grace_seconds":60}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let new = TestApp::new("1", "k", body["secret"].as_str().expect("new secret"));
    assert_eq!(
        s.api(&new, "GET", "/apps/1/channels", &[], "").await.0,
        200,
        "the new secret signs"
    );
    assert_eq!(
        s.api(&app1(), "GET", "/apps/1/channels", &[], "").await.0,
        200,
        "the old one too, for now"
    );
    // A private channel signed with the old secret is still accepted.
    let (mut c, sid) = s.connect("k").await;
    let auth = channel_auth(&app1(), &sid, "private-a", None);
    let ok = c.subscribe("private-a", Some(&auth), None).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );

    let (status, body) = admin(
        port,
        "POST",
        "/apps/1/rotate-secret",
        Some(TOKEN),
        r#"{"grace_seconds":0}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let newest = TestApp::new("1", "k", body["secret"].as_str().expect("newest secret"));
    assert_eq!(
        s.api(&newest, "GET", "/apps/1/channels", &[], "").await.0,
        200
    );
    assert_eq!(
        s.api(&new, "GET", "/apps/1/channels", &[], "").await.0,
        401,
        "no grace"
    );
    assert_eq!(
        s.api(&app1(), "GET", "/apps/1/channels", &[], "").await.0,
        401
    );
    let (status, _) = admin(
        port,
        "POST",
        "/apps/1/rotate-secret",
        Some(TOKEN),
        r#"{"grace_seconds":-5}"#,
    )
    .await;
    assert_eq!(status, 400);
}

/// Whether `app` is served by `s` within `within` (its HTTP API answers 200).
async fn served_within(s: &TestServer, app: &TestApp, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        let path = format!("/apps/{}/channels", app.id);
        if s.api(app, "GET", &path, &[], "").await.0 == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_every_node_applies_a_change_within_a_second() {
    let db = Db::create("postgres");
    db.sql(INSERT);
    // Polling every 60 s: only a notification can bring a change within a second.
    let slow = db
        .config(db.port())
        .replace("app_store_poll_seconds = 1", "app_store_poll_seconds = 60");
    let (a, port) = with_admin(&slow).await;
    let b = TestServer::start(&slow).await;
    for s in [&a, &b] {
        assert!(crate::common::process::wait_ready(s.addr, Duration::from_secs(10)).await);
    }
    // Created through node A's admin API: node B serves it within a second.
    let (status, created) = admin(
        port,
        "POST",
        "/apps",
        Some(TOKEN),
        r#"{"id":"9","key":"k9"}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let nine = TestApp::new("9", "k9", created["secret"].as_str().expect("secret"));
    assert!(
        served_within(&b, &nine, Duration::from_secs(1)).await,
        "node B within a second"
    );
    // Changed with SQL by another tool: the documented trigger notifies both nodes.
    db.sql(
        "CREATE FUNCTION clarion_apps_changed() RETURNS trigger AS $$ BEGIN PERFORM pg_notify('clarion_apps', ''); RETURN NULL; END $$ LANGUAGE plpgsql",
    );
    db.sql("CREATE TRIGGER clarion_apps_changed AFTER INSERT OR UPDATE OR DELETE ON apps FOR EACH STATEMENT EXECUTE FUNCTION clarion_apps_changed()");
    db.sql("UPDATE apps SET secret = 's-sql' WHERE id = '1'");
    let renewed = TestApp::new("1", "k", "s-sql");
    for s in [&a, &b] {
        assert!(
            served_within(s, &renewed, Duration::from_secs(1)).await,
            "the new secret within a second"
        );
    }
}
