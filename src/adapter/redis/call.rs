//! The one way the adapter talks to Redis: every call has a deadline, and a failure marks Redis
//! unhealthy and gives `None`, so every caller falls back to its local answer the same way.

use std::time::Duration;

use super::script_calls::Call;
use super::RedisAdapter;

/// The longest any single Redis call may take before the node falls back to local answers.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(1000);

impl RedisAdapter {
    /// Awaits one Redis call within `CALL_TIMEOUT`; `what` names it in the health log.
    pub(super) async fn bounded<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.health.fail(what, &e);
                None
            }
            Err(_) => {
                self.health.fail(what, &"timed out");
                None
            }
        }
    }

    pub(super) async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Option<T> {
        let Some(mut conn) = self.endpoint.conn() else {
            self.health.fail(what, &"no Redis master known yet");
            return None;
        };
        self.bounded(what, cmd.query_async::<T>(&mut conn)).await
    }

    pub(super) async fn pipe<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipe: &redis::Pipeline,
    ) -> Option<T> {
        let Some(mut conn) = self.endpoint.conn() else {
            self.health.fail(what, &"no Redis master known yet");
            return None;
        };
        self.bounded(what, pipe.query_async::<T>(&mut conn)).await
    }

    pub(super) async fn script<T: redis::FromRedisValue>(
        &self,
        what: &str,
        call: &Call<'_>,
    ) -> Option<T> {
        let inv = call.invocation();
        let Some(mut conn) = self.endpoint.conn() else {
            self.health.fail(what, &"no Redis master known yet");
            return None;
        };
        self.bounded(what, inv.invoke_async::<T>(&mut conn)).await
    }
}
