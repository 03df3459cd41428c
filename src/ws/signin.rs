//! `pusher:signin`: user authentication, which unlocks `#server-to-user-{id}` and makes the
//! connection reachable by `terminate_connections`.

use serde_json::Value;

use super::session::{Session, SignedIn};
use crate::protocol::codes;
use crate::protocol::frames;
use crate::protocol::signature;

impl Session {
    pub(super) async fn signin(&mut self, auth: &str, user_data: &str) {
        if !signature::verify_user_auth(
            &self.app.key,
            &self.app.secret,
            &self.socket_id,
            user_data,
            auth,
        ) {
            let signed = format!("{}::user::{user_data}", self.socket_id);
            return self.send(frames::error(
                codes::UNAUTHORIZED,
                &format!("Sign-in refused: invalid signature; expected \"{}:\" followed by the HMAC-SHA256 hex digest of {signed:?}", self.app.key),
                None,
            ));
        }
        let parsed: Option<Value> = serde_json::from_str(user_data).ok();
        let id =
            match parsed.as_ref().and_then(|v| v.get("id")) {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return self.send(frames::error(
                    codes::UNAUTHORIZED,
                    "Sign-in refused: user_data must be a JSON object with a non-empty string id",
                    None,
                )),
            };
        let user_info = parsed
            .as_ref()
            .and_then(|v| v.get("user_info"))
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(previous) = self.user.take() {
            if previous.id != id {
                self.state
                    .adapter
                    .remove_user(&self.app, &previous.id, self.handle.socket_id)
                    .await;
            }
        }
        self.state
            .adapter
            .add_user(&self.app, &id, self.handle.socket_id)
            .await;
        self.user = Some(SignedIn { id, user_info });
        self.send(frames::signin_success(user_data));
    }
}
