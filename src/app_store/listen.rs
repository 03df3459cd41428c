//! PostgreSQL `LISTEN/NOTIFY` for the app store: a notification on `CHANNEL` makes the node read
//! the table at once instead of at its next poll. The admin API notifies after each write, so
//! every node of a cluster on the same database applies it within a second; a trigger on the
//! table (docs/app-store.md) does the same for changes made by any other tool. Polling stays:
//! a notification sent while the listener was reconnecting is lost, the next poll is not.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;

/// The channel the nodes listen on and the admin API notifies.
pub const CHANNEL: &str = "clarion_apps";

/// Listens while the server lives, waking `kick` on every notification and after every
/// reconnection (something may have been missed meanwhile).
pub fn spawn(url: String, kick: std::sync::Weak<Notify>) {
    tokio::spawn(async move {
        let mut logged = false;
        loop {
            let connected = async {
                let mut l = PgListener::connect(&url).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            };
            match connected.await {
                Ok(mut listener) => {
                    logged = false;
                    loop {
                        let Some(kick) = kick.upgrade() else {
                            return;
                        };
                        match listener.try_recv().await {
                            Ok(_) => kick.notify_one(),
                            Err(_) => break,
                        }
                    }
                }
                Err(e) => {
                    if !logged {
                        tracing::warn!(error = %super::without_url(&e.to_string()), "app store: cannot LISTEN for changes; polling only until it can");
                        logged = true;
                    }
                }
            }
            if kick.upgrade().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// Tells every listening node that the table changed.
pub async fn notify(pool: &sqlx::AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("SELECT CAST(pg_notify('{CHANNEL}', '') AS TEXT)"))
        .execute(pool)
        .await
        .map(|_| ())
}
