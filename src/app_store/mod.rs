//! Apps kept in a PostgreSQL or MySQL/MariaDB table (`app_store`), read as Soketi's `apps`
//! table is laid out, so a Soketi user points Clarion at the same table and changes only the
//! URL (docs/app-store.md).
//!
//! The whole table is read into memory: a connection or an API call never waits on the
//! database. The server reads it again every `app_store_poll_seconds` and applies it only when
//! something changed (`Snapshot::fingerprint`), through the same path as SIGHUP. A row that
//! cannot be an app is left out with a warning naming its id and column; the others load.

pub mod listen;
mod row;
mod write;

pub use write::WriteError;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::app::App;

/// Which SQL dialect the table speaks (identifier quoting and casts differ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dialect {
    Postgres,
    Mysql,
}

/// A pool on the store's database and where the apps are.
pub struct AppStore {
    pool: AnyPool,
    table: String,
    dialect: Dialect,
}

/// One read of the table: the apps that loaded and the rows that did not (why, by id).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub apps: Vec<App>,
    pub skipped: Vec<String>,
}

impl Snapshot {
    /// A cheap digest of what was read: equal digests mean nothing changed.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for app in &self.apps {
            format!("{app:?}").hash(&mut h);
        }
        self.skipped.hash(&mut h);
        h.finish()
    }
}

impl AppStore {
    /// A pool that connects when first used, so a database that is down at start does not stop
    /// the server; `table` is a plain identifier (checked with the configuration).
    pub fn new(dialect: Dialect, url: &str, table: &str) -> Result<AppStore, String> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(url)
            .map_err(|e| format!("app_store_url: {}", without_url(&e.to_string())))?;
        Ok(AppStore {
            pool,
            table: table.to_string(),
            dialect,
        })
    }

    /// Which dialect the table speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// After a write: tells the other nodes (PostgreSQL `NOTIFY`; MySQL has none, its nodes
    /// see the change at their next poll). A failed notification only delays them.
    pub async fn announce(&self) {
        if self.dialect == Dialect::Postgres {
            if let Err(e) = listen::notify(&self.pool).await {
                tracing::warn!(error = %without_url(&e.to_string()), "app store: NOTIFY failed; other nodes see the change at their next poll");
            }
        }
    }

    fn quote(&self, ident: &str) -> String {
        match self.dialect {
            Dialect::Postgres => format!("\"{ident}\""),
            Dialect::Mysql => format!("`{ident}`"),
        }
    }

    /// Reads the whole table.
    pub async fn load(&self) -> Result<Snapshot, String> {
        let columns = self.columns().await?;
        if columns.is_empty() {
            return Err(format!(
                "app_store_table: no table {:?} in the database",
                self.table
            ));
        }
        let wanted: Vec<&str> = row::COLUMNS
            .iter()
            .copied()
            .filter(|c| columns.iter().any(|have| have == c))
            .collect();
        let cast = |c: &str| match self.dialect {
            Dialect::Postgres => format!("CAST({} AS TEXT) AS {}", self.quote(c), self.quote(c)),
            Dialect::Mysql => format!("CAST({} AS CHAR) AS {}", self.quote(c), self.quote(c)),
        };
        let select: Vec<String> = wanted.iter().map(|c| cast(c)).collect();
        let sql = format!(
            "SELECT {} FROM {}",
            select.join(", "),
            self.quote(&self.table)
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| without_url(&e.to_string()))?;
        let mut snapshot = Snapshot::default();
        for r in &rows {
            let get = |c: &str| -> Option<String> {
                if !wanted.contains(&c) {
                    return None;
                }
                r.try_get::<Option<String>, _>(c).ok().flatten()
            };
            match row::app(&get) {
                Ok(app) => snapshot.apps.push(app),
                Err(why) => snapshot.skipped.push(why),
            }
        }
        snapshot.apps.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(snapshot)
    }

    /// The table's column names, lower-cased.
    async fn columns(&self) -> Result<Vec<String>, String> {
        let sql = match self.dialect {
            Dialect::Postgres => {
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
                 WHERE table_name = $1 AND table_schema = ANY (current_schemas(false))"
            }
            Dialect::Mysql => {
                "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
                 WHERE table_name = ? AND table_schema = DATABASE()"
            }
        };
        let rows: Vec<AnyRow> = sqlx::query(sql)
            .bind(&self.table)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| without_url(&e.to_string()))?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .map(|c| c.to_ascii_lowercase())
            .collect())
    }
}

/// A database error's text without anything that looks like a connection URL (which may carry
/// a password).
fn without_url(text: &str) -> String {
    text.split_whitespace()
        .map(|w| if w.contains("://") { "<url>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}
