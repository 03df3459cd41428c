//! Signed-in users across nodes, for watchlist events (docs/protocol.md §10.1). Each node
//! keeps its own hash of user → signed-in connections and the app's hash holds their sum; the
//! user scripts change both and publish a transition (first connection anywhere: online; last
//! one gone: offline) in one step, and the bus brings it to every node, this one included,
//! which tells its watchers. So one user's transitions reach every watcher once, in the order
//! they happened.
//!
//! Counted for every app, watchlist events on or not, so that turning them on in a reload
//! finds the counts right; an app without them publishes nothing. One round trip per sign-in
//! and per signed-in disconnect. While Redis is away a node's sign-ins and sign-outs are not
//! counted; `assert_users` puts the node's whole truth back when Redis answers again,
//! announcing what changed meanwhile.

use super::bus::watch_head;
use super::RedisAdapter;
use crate::app::App;
use crate::protocol::socket_id::SocketId;

impl RedisAdapter {
    /// A sign-in here: counted in the cluster (which announces a first connection), the
    /// watchlist registered, and the watched users' statuses read from the cluster (from this
    /// node alone while Redis is away).
    pub(super) async fn sign_in_cluster(
        &self,
        app: &App,
        socket_id: SocketId,
        user_id: &str,
        watchlist: Option<&[String]>,
    ) -> Vec<String> {
        let guard = self.users_guard.read().await;
        let here = self
            .local
            .sign_in_here(&app.id, socket_id, user_id, watchlist, false);
        self.count_user(app, user_id, 1).await;
        drop(guard);
        let Some(ids) = watchlist.filter(|ids| !ids.is_empty()) else {
            return here;
        };
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.keys.users(&app.id)).arg(ids);
        match self
            .query::<Vec<Option<i64>>>("read watched users", &cmd)
            .await
        {
            Some(counts) => ids
                .iter()
                .zip(counts)
                .filter(|(_, n)| n.is_some_and(|n| n > 0))
                .map(|(id, _)| id.clone())
                .collect(),
            None => here,
        }
    }

    /// Moves this node's count of `user_id`'s connections by `delta` (+1 sign-in, -1 a
    /// signed-in connection gone) and the cluster's total with it.
    pub(super) async fn count_user(&self, app: &App, user_id: &str, delta: i64) {
        let Some(head) = watch_head(&self.keys.node, &app.id) else {
            return;
        };
        let _: Option<i64> = self
            .script(
                "count user",
                &self.scripts.user_count_call(
                    &self.keys,
                    &app.id,
                    app.enable_watchlist_events,
                    &head,
                    user_id,
                    delta,
                ),
            )
            .await;
    }

    /// A signed-in connection here is gone: forgotten here, and its user's count moved.
    pub(super) async fn sign_out_cluster(&self, app: &App, socket_id: SocketId, user_id: &str) {
        let _guard = self.users_guard.read().await;
        self.local
            .namespace(&app.id)
            .remove_user(user_id, socket_id, false);
        self.count_user(app, user_id, -1).await;
    }

    /// Replaces this node's signed-in users in Redis with its truth, for `apps` (those it has
    /// or had state for), announcing every user who came or went meanwhile. False when Redis
    /// did not answer.
    pub(super) async fn assert_users(&self, apps: impl IntoIterator<Item = String>) -> bool {
        let _guard = self.users_guard.write().await;
        let mut ok = true;
        for app in apps {
            let users = self.local.namespace(&app).local_users();
            ok &= self.assert_app_users(&app, &users).await;
        }
        ok
    }

    async fn assert_app_users(&self, app_id: &str, users: &[(String, usize)]) -> bool {
        let Some(head) = watch_head(&self.keys.node, app_id) else {
            return true;
        };
        let call = self
            .scripts
            .users_assert_call(&self.keys, app_id, &head, users);
        self.script::<i64>("assert users", &call).await.is_some()
    }

    /// Takes a dead node's sign-ins of `app_id` off the cluster's totals, announcing the users
    /// it was the last connection of.
    pub(super) async fn reap_users(&self, app_id: &str, node: &str) {
        let Some(head) = watch_head(node, app_id) else {
            return;
        };
        let _: Option<i64> = self
            .script(
                "reap users",
                &self
                    .scripts
                    .users_reap_call(&self.keys, app_id, node, &head),
            )
            .await;
    }
}
