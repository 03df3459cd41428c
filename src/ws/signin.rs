//! `pusher:signin`: user authentication, which unlocks `#server-to-user-{id}`, makes the
//! connection reachable by `terminate_connections` and its user online, and, with the app's
//! watchlist events, tells it who of the users it watches is online (docs/protocol.md §10.1).

use super::session::{Session, SignedIn};
use crate::protocol::codes;
use crate::protocol::frames;
use crate::protocol::presence::{self, SigninUser};
use crate::protocol::signature;
use crate::protocol::watchlist;

impl Session {
    pub(super) async fn signin(&mut self, auth: &str, user_data: &str) {
        if !self.app.accepted_secrets().any(|secret| {
            signature::verify_user_auth(&self.app.key, secret, &self.socket_id, user_data, auth)
        }) {
            let signed = format!("{}::user::{user_data}", self.socket_id);
            return self.send(frames::error(
                codes::UNAUTHORIZED,
                &format!("Sign-in refused: invalid signature; expected \"{}:\" followed by the HMAC-SHA256 hex digest of {signed:?}", self.app.key),
                None,
            ));
        }
        let Some(SigninUser {
            id,
            user_info,
            watchlist,
        }) = presence::parse_signin_user(user_data)
        else {
            return self.send(frames::error(
                codes::UNAUTHORIZED,
                "Sign-in refused: user_data must be a JSON object with a non-empty string id",
                None,
            ));
        };
        // One identity per connection (Pusher: a sign-in fails when the connection is already
        // associated with a different user id; docs/protocol.md §10.1). Signing in again as the
        // same id is accepted, and changes nothing: the watchlist is fixed for the connection.
        match self.user_id() {
            Some(previous) if previous != id => {
                return self.send(frames::error(
                    codes::UNAUTHORIZED,
                    "Sign-in refused: this connection is already signed in as another user",
                    None,
                ));
            }
            Some(_) => return self.send(frames::signin_success(user_data)),
            None => {}
        }
        if !self.admit().await {
            return;
        }
        // In the order pusher-js expects: success, the over-limit warning, then the statuses.
        self.send(frames::signin_success(user_data));
        let watching = self.app.enable_watchlist_events;
        if watching && watchlist.truncated {
            self.send(frames::error(
                codes::WATCHLIST_LIMIT,
                watchlist::OVER_LIMIT,
                None,
            ));
        }
        let ids = watching.then_some(watchlist.ids.as_slice());
        let online = self
            .state
            .adapter
            .sign_in(&self.app, self.handle.socket_id, &id, ids)
            .await;
        self.user = Some(SignedIn { id, user_info });
        if watching {
            let offline: Vec<String> = watchlist
                .ids
                .into_iter()
                .filter(|w| !online.contains(w))
                .collect();
            if let Some(frame) = watchlist::events(&online, &offline) {
                self.send(frame);
            }
            self.state
                .adapter
                .watchlist_sent(&self.app, self.handle.socket_id);
        }
    }
}
