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
        // One identity per connection (Pusher: a sign-in fails when the connection is already
        // associated with a different user id; docs/protocol.md §10.1). Signing in again as the
        // same id is accepted.
        if self.user_id().is_some_and(|previous| previous != id) {
            return self.send(frames::error(
                codes::UNAUTHORIZED,
                "Sign-in refused: this connection is already signed in as another user",
                None,
            ));
        }
        if !self.admit().await {
            return;
        }
        self.state
            .adapter
            .local()
            .add_user(&self.app.id, &id, self.handle.socket_id);
        self.user = Some(SignedIn { id, user_info });
        self.send(frames::signin_success(user_data));
    }
}
