//! Telling every node that the app store changed, for stores that cannot tell them themselves
//! (MySQL has no LISTEN/NOTIFY): a counter in Redis that the admin API increments after a
//! write and that each node reads twice a second. A change makes the node read its app store
//! at once, so an admin API change reaches the whole cluster within a second whatever the
//! store. One single-key command each way: the same on one server, Sentinel and Cluster.

use std::sync::Weak;
use std::time::Duration;

use super::RedisAdapter;
use crate::adapter::ClusterEvent;

/// How often a node reads the counter.
const EVERY: Duration = Duration::from_millis(500);

impl RedisAdapter {
    fn apps_version_key(&self) -> String {
        format!("{}:apps:version", self.keys.prefix)
    }

    /// Bumps the counter (after an admin API write).
    pub(super) async fn bump_apps_version(&self) {
        let _: Option<i64> = self
            .query(
                "announce an app change",
                redis::cmd("INCR").arg(self.apps_version_key()),
            )
            .await;
    }

    async fn apps_version(&self) -> Option<Option<i64>> {
        self.query(
            "read the app-change counter",
            redis::cmd("GET").arg(self.apps_version_key()),
        )
        .await
    }
}

/// Reads the counter while the adapter lives and reports each change as
/// `ClusterEvent::AppsChanged` (the server then reads its app store).
pub fn spawn(adapter: Weak<RedisAdapter>) {
    tokio::spawn(async move {
        let mut seen: Option<Option<i64>> = None;
        loop {
            tokio::time::sleep(EVERY).await;
            let Some(this) = adapter.upgrade() else {
                return;
            };
            let Some(now) = this.apps_version().await else {
                continue;
            };
            // The first read counts as a change too: a write may have come between this
            // node's first store read and its first look at the counter.
            if seen != Some(now) {
                this.report("", ClusterEvent::AppsChanged);
            }
            seen = Some(now);
        }
    });
}
