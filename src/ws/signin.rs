//! `pusher:signin`: user authentication, which unlocks `#server-to-user-{id}` and makes the
//! connection reachable by `terminate_connections`.

use super::session::{Session, SignedIn};
use crate::protocol::codes;
use crate::protocol::frames;
use crate::protocol::presence::{self, SigninUser};
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
        let Some(SigninUser { id, user_info }) = presence::parse_signin_user(user_data) else {
            return self.send(frames::error(
                codes::UNAUTHORIZED,
                "Sign-in refused: user_data must be a JSON object with a non-empty string id",
                None,
            ));
        };
        if let Some(previous) = self.user.take() {
            if previous.id != id {
                self.state.adapter.local().remove_user(
                    &self.app.id,
                    &previous.id,
                    self.handle.socket_id,
                );
                // The previous user's private channel goes with the previous identity.
                let own = format!(
                    "{}{}",
                    crate::protocol::channel_name::SERVER_TO_USER_PREFIX,
                    previous.id
                );
                self.unsubscribe(&own).await;
            }
        }
        self.state
            .adapter
            .local()
            .add_user(&self.app.id, &id, self.handle.socket_id);
        self.user = Some(SignedIn { id, user_info });
        self.send(frames::signin_success(user_data));
    }
}
