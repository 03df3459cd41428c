//! The configuration's own rules: defaults, validation by key, masking, overrides.

use super::*;

#[test]
fn defaults_give_the_development_app() {
    let mut c = Config::default();
    c.finish().expect("valid");
    assert!(c.using_development_app);
    assert_eq!(c.apps[0].key, "app-key");
    assert!(c.apps[0].enable_client_messages);
}

#[test]
fn unknown_keys_are_named() {
    let e = Config::from_toml("prot = 5").expect_err("unknown key");
    assert!(e.contains("prot"), "{e}");
    let e = Config::from_toml("[[apps]]\nid='1'\nkey='k'\nsecret='s'\nmax_conections=1")
        .expect_err("unknown app key");
    assert!(e.contains("max_conections"), "{e}");
}

#[test]
fn validation_names_the_key() {
    let mut c = Config::from_toml("[[apps]]\nid='1'\nkey='k'\nsecret=''").expect("parses");
    assert!(c
        .finish()
        .expect_err("empty secret")
        .contains("apps[0].secret"));
    let mut c = Config::from_toml(
        "[[apps]]\nid='1'\nkey='k'\nsecret='s'\n[[apps]]\nid='2'\nkey='k'\nsecret='s'",
    )
    .expect("parses");
    assert!(c.finish().expect_err("dup key").contains("apps[1].key"));
    let mut c = Config::from_toml("activity_timeout = 0").expect("parses");
    assert!(c.finish().expect_err("zero").contains("activity_timeout"));
}

#[test]
fn redis_urls_are_checked_when_read() {
    let redis = |url: &str| {
        let mut c = Config::from_toml(&format!("adapter = \"redis\"\nredis_url = \"{url}\""))
            .expect("parses");
        c.finish()
    };
    assert_eq!(redis("redis://127.0.0.1:6379/0"), Ok(()));
    assert_eq!(redis("rediss://u:Secret_1@host:6380/0"), Ok(()));
    let e = redis("redis://u:Secret_1@host:6379/notadb").expect_err("bad database");
    assert!(
        e.starts_with("redis_url:") && !e.contains("Secret_1"),
        "{e}"
    );
    assert!(redis("valkey://host").is_err());
}

#[test]
fn app_store_keys_are_checked_and_replace_the_development_app() {
    let finish = |t: &str| {
        let mut c = Config::from_toml(t).expect("parses");
        c.finish().map(|_| c)
    };
    let db =
        finish("app_store = 'postgres'\napp_store_url = 'postgres://u:Pw_1@h/db'").expect("valid");
    assert!(
        db.apps.is_empty() && !db.using_development_app,
        "apps come from the table"
    );
    assert!(!db.masked_toml().contains("Pw_1"));
    let e = finish("app_store = 'mysql'\napp_store_url = 'postgres://h/db'").expect_err("scheme");
    assert!(e.starts_with("app_store_url:"), "{e}");
    let e = finish(
        "app_store = 'postgres'\napp_store_url = 'postgres://h/db'\napp_store_table = 'apps; DROP'",
    )
    .expect_err("identifier");
    assert!(e.starts_with("app_store_table:"), "{e}");
    let e = finish("app_store = 'postgres'\napp_store_url = 'postgres://h/db'\n[[apps]]\nid='1'\nkey='k'\nsecret='s'")
        .expect_err("both");
    assert!(e.starts_with("apps:"), "{e}");
    let e = finish("app_store = 'sqlite'").expect_err("kind");
    assert!(e.starts_with("app_store:"), "{e}");
}

#[test]
fn recovery_tables_are_checked() {
    let app = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n[[apps.recovery]]\n";
    let mut ok = Config::from_toml(&format!("{app}channels = [\"private-*\"]")).expect("parses");
    assert_eq!(ok.finish(), Ok(()));
    let rec = ok.apps[0].recording_for("private-a").expect("recorded");
    assert_eq!((rec.history_size, rec.max_replay), (100, 100));
    let mut wide = Config::from_toml(&format!(
        "{app}channels = [\"a\"]\nhistory_size = 5\nmax_replay = 6"
    ))
    .expect("parses");
    let e = wide.finish().expect_err("max_replay over history_size");
    assert!(e.starts_with("apps[0].recovery[0].max_replay"), "{e}");
    let mut cluster = Config::from_toml(&format!("adapter = \"redis\"\n{app}channels = [\"a\"]"))
        .expect("parses");
    assert_eq!(cluster.finish(), Ok(()), "history in Redis");
}

#[test]
fn masked_settings_hide_secrets() {
    let mut c = Config::from_toml(
        "redis_url = 'redis://u:pw@h:1/0'\n[[apps]]\nid='1'\nkey='k'\nsecret='topsecret'",
    )
    .expect("parses");
    c.finish().expect("valid");
    let shown = c.masked_toml();
    assert!(
        !shown.contains("topsecret") && !shown.contains(":pw@"),
        "{shown}"
    );
    assert!(shown.contains("redis://u:********@h:1/0"), "{shown}");
    assert_eq!(
        mask_url_password("redis://u:p@ss/w@h:1/0"),
        "redis://u:********@h:1/0"
    );
    assert_eq!(
        mask_url_password("https://hook:pw@example.test/x"),
        "https://hook:********@example.test/x"
    );
    assert!(shown.contains("key = \"k\""), "{shown}");
}

#[test]
fn flags_override_the_file() {
    let mut c = Config::from_toml("port = 7000\nhost = '127.0.0.1'").expect("parses");
    let cli = Cli {
        port: Some(7001),
        ..Cli::default()
    };
    c.apply_overrides(&cli).expect("ok");
    assert_eq!(c.port, 7001);
    assert_eq!(c.host, "127.0.0.1");
}
