//! Writing an app back into the table, for the admin API: the reverse of `row`, column by
//! column, into whichever of Soketi's columns the table has. A field the table cannot hold (a
//! Clarion-only switch, a limit with no column) is refused by name rather than lost.

use sqlx::Arguments;

use super::{row, AppStore, Dialect};
use crate::app::App;

/// Why a write did not happen.
#[derive(Debug, PartialEq)]
pub enum WriteError {
    /// The app or the table refuses it (400): the message names the field or the column.
    Invalid(String),
    /// Another app has this id or key (409).
    Conflict(String),
    /// No app with this id (404).
    NotFound,
    /// The database could not be reached (503).
    Unavailable(String),
}

/// One column's value as the write sends it.
enum Value {
    /// A bound text parameter.
    Text(String),
    /// An untyped literal of digits and `-` only, so each database converts it to the
    /// column's type (integer, small integer, boolean) as it would a typed-in value.
    Literal(String),
    /// JSON, bound as text and cast.
    Json(String),
    Null,
}

fn unlimited(n: u64) -> Value {
    Value::Literal(if n == 0 { "-1".into() } else { n.to_string() })
}

fn flag(b: bool) -> Value {
    Value::Literal(if b { "1" } else { "0" }.into())
}

fn kb(bytes: usize) -> Value {
    Value::Literal(bytes.div_ceil(1024).to_string())
}

/// Every column Clarion can write, with the app's value in it.
fn columns(app: &App) -> Vec<(&'static str, Value)> {
    let webhooks = if app.webhooks.is_empty() {
        Value::Null
    } else {
        serde_json::to_string(&app.webhooks).map_or(Value::Null, Value::Json)
    };
    vec![
        ("id", Value::Text(app.id.clone())),
        ("key", Value::Text(app.key.clone())),
        ("secret", Value::Text(app.secret.clone())),
        ("enabled", flag(app.enabled)),
        ("enable_client_messages", flag(app.enable_client_messages)),
        (
            "enable_user_authentication",
            flag(app.enable_user_authentication),
        ),
        ("max_connections", unlimited(app.max_connections)),
        (
            "max_backend_events_per_sec",
            unlimited(u64::from(app.max_backend_events_per_second)),
        ),
        (
            "max_client_events_per_sec",
            unlimited(u64::from(app.max_client_events_per_second)),
        ),
        (
            "max_read_req_per_sec",
            unlimited(u64::from(app.max_read_requests_per_second)),
        ),
        (
            "max_presence_members_per_channel",
            unlimited(app.max_presence_members_per_channel),
        ),
        (
            "max_presence_member_size_in_kb",
            kb(app.max_presence_member_size),
        ),
        (
            "max_channel_name_length",
            Value::Literal(app.max_channel_name_length.to_string()),
        ),
        (
            "max_event_channels_at_once",
            Value::Literal(app.max_event_channels.to_string()),
        ),
        (
            "max_event_name_length",
            Value::Literal(app.max_event_name_length.to_string()),
        ),
        ("max_event_payload_in_kb", kb(app.max_event_payload_size)),
        (
            "max_event_batch_size",
            Value::Literal(app.max_event_batch_size.to_string()),
        ),
        ("webhooks", webhooks),
    ]
}

/// The first field of `app` that a table with `have` columns would not give back as it is.
fn lost_field(app: &App, have: &[String]) -> Option<String> {
    let kept: Vec<(&str, String)> = columns(app)
        .into_iter()
        .filter(|(c, _)| have.iter().any(|h| h == c))
        .filter_map(|(c, v)| match v {
            Value::Text(t) | Value::Literal(t) | Value::Json(t) => Some((c, t)),
            Value::Null => None,
        })
        .collect();
    let back = row::app(&|c| kept.iter().find(|(k, _)| *k == c).map(|(_, v)| v.clone()));
    let want = serde_json::to_value(app).ok()?;
    let got = match back {
        Ok(b) => serde_json::to_value(b).ok()?,
        Err(e) => return Some(e),
    };
    let (want, got) = (want.as_object()?, got.as_object()?);
    want.iter()
        .find(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
}

impl AppStore {
    /// Adds `app` as a new row.
    pub async fn insert(&self, app: &App) -> Result<(), WriteError> {
        let have = self.columns().await.map_err(WriteError::Unavailable)?;
        self.check(app, &have)?;
        let cols: Vec<(&str, Value)> = columns(app)
            .into_iter()
            .filter(|(c, _)| have.iter().any(|h| h == c))
            .collect();
        let mut args = sqlx::any::AnyArguments::default();
        let mut values = Vec::new();
        for (_, v) in &cols {
            values.push(self.placeholder(v, &mut args)?);
        }
        let names: Vec<String> = cols.iter().map(|(c, _)| self.quote(c)).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.quote(&self.table),
            names.join(", "),
            values.join(", ")
        );
        self.execute(&sql, args).await.map(|_| ())
    }

    /// Replaces the row of `app.id` with `app`.
    pub async fn update(&self, app: &App) -> Result<(), WriteError> {
        let have = self.columns().await.map_err(WriteError::Unavailable)?;
        self.check(app, &have)?;
        let mut args = sqlx::any::AnyArguments::default();
        let mut sets = Vec::new();
        for (c, v) in columns(app).into_iter().filter(|(c, _)| *c != "id") {
            if have.iter().any(|h| h == c) {
                let p = self.placeholder(&v, &mut args)?;
                sets.push(format!("{} = {p}", self.quote(c)));
            }
        }
        let id = self.placeholder(&Value::Text(app.id.clone()), &mut args)?;
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = {id}",
            self.quote(&self.table),
            sets.join(", "),
            self.quote("id")
        );
        match self.execute(&sql, args).await? {
            0 if self.dialect == Dialect::Postgres => Err(WriteError::NotFound),
            // MySQL counts changed rows, not matched ones: an identical write is 0 too.
            _ => Ok(()),
        }
    }

    /// Gives app `id` the secret `new`, keeping `old` valid until the Unix second `until`;
    /// needs Clarion's two extra columns (docs/app-store.md).
    pub async fn rotate(
        &self,
        id: &str,
        new: &str,
        old: &str,
        until: u64,
    ) -> Result<(), WriteError> {
        let have = self.columns().await.map_err(WriteError::Unavailable)?;
        let missing: Vec<&str> = ["previous_secret", "previous_secret_until"]
            .into_iter()
            .filter(|c| !have.iter().any(|h| h == c))
            .collect();
        if !missing.is_empty() {
            let ty = match self.dialect {
                Dialect::Postgres => "bigint",
                Dialect::Mysql => "bigint",
            };
            return Err(WriteError::Conflict(format!(
                "rotating a secret keeps the old one in two more columns, which the table {t:?} lacks ({}): ALTER TABLE {t} ADD COLUMN previous_secret varchar(255), ADD COLUMN previous_secret_until {ty}",
                missing.join(", "),
                t = self.table
            )));
        }
        let mut args = sqlx::any::AnyArguments::default();
        let new = self.placeholder(&Value::Text(new.into()), &mut args)?;
        let old = self.placeholder(&Value::Text(old.into()), &mut args)?;
        let until = self.placeholder(&Value::Literal(until.to_string()), &mut args)?;
        let id = self.placeholder(&Value::Text(id.into()), &mut args)?;
        let sql = format!(
            "UPDATE {} SET {} = {new}, {} = {old}, {} = {until} WHERE {} = {id}",
            self.quote(&self.table),
            self.quote("secret"),
            self.quote("previous_secret"),
            self.quote("previous_secret_until"),
            self.quote("id"),
        );
        match self.execute(&sql, args).await? {
            0 => Err(WriteError::NotFound),
            _ => Ok(()),
        }
    }

    fn check(&self, app: &App, have: &[String]) -> Result<(), WriteError> {
        app.validate("app").map_err(WriteError::Invalid)?;
        match lost_field(app, have) {
            Some(field) => Err(WriteError::Invalid(format!(
                "app.{field}: the table {:?} has no column that keeps this value (Soketi's layout; docs/app-store.md)",
                self.table
            ))),
            None => Ok(()),
        }
    }

    /// The SQL for one value, binding it when it is text.
    fn placeholder(
        &self,
        v: &Value,
        args: &mut sqlx::any::AnyArguments<'_>,
    ) -> Result<String, WriteError> {
        let bind =
            |args: &mut sqlx::any::AnyArguments<'_>, t: &str| -> Result<String, WriteError> {
                args.add(t.to_string())
                    .map_err(|e| WriteError::Invalid(e.to_string()))?;
                Ok(match self.dialect {
                    Dialect::Postgres => format!("${}", args.len()),
                    Dialect::Mysql => "?".into(),
                })
            };
        Ok(match v {
            Value::Text(t) => bind(args, t)?,
            Value::Json(t) => format!("CAST({} AS JSON)", bind(args, t)?),
            // Only digits and '-' ever get here (see `Value::Literal`).
            Value::Literal(l) if l.chars().all(|c| c.is_ascii_digit() || c == '-') => {
                format!("'{l}'")
            }
            Value::Literal(_) => return Err(WriteError::Invalid("not a number".into())),
            Value::Null => "NULL".into(),
        })
    }

    async fn execute(
        &self,
        sql: &str,
        args: sqlx::any::AnyArguments<'_>,
    ) -> Result<u64, WriteError> {
        match sqlx::query_with(sql, args).execute(&self.pool).await {
            Ok(done) => Ok(done.rows_affected()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(WriteError::Conflict(
                "another app has this id or key".into(),
            )),
            Err(sqlx::Error::Database(e)) => Err(WriteError::Invalid(format!(
                "the table refused it: {}",
                e.message()
            ))),
            Err(e) => Err(WriteError::Unavailable(super::without_url(&e.to_string()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<String> {
        columns(&App::default())
            .iter()
            .map(|(c, _)| c.to_string())
            .collect()
    }

    #[test]
    fn what_the_table_cannot_keep_is_named() {
        let app = App {
            id: "1".into(),
            key: "k".into(),
            secret: "s".into(),
            ..App::default()
        };
        assert_eq!(lost_field(&app, &all()), None, "defaults round-trip");
        let watch = App {
            enable_watchlist_events: true,
            ..app.clone()
        };
        assert_eq!(
            lost_field(&watch, &all()).as_deref(),
            Some("enable_watchlist_events")
        );
        let few: Vec<String> = ["id", "key", "secret"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Without the rate column a row reads as unlimited: only max_connections is lost.
        let limited = App {
            max_connections: 5,
            max_client_events_per_second: 0,
            ..app
        };
        assert_eq!(
            lost_field(&limited, &few).as_deref(),
            Some("max_connections")
        );
    }
}
