//! The protocol state of one connection and the dispatch of its messages.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::app::App;
use crate::channels::handle::ConnHandle;
use crate::limits::window::RateLimiter;
use crate::protocol::codes;
use crate::protocol::frames::{self, Frame};
use crate::protocol::inbound::{self, Inbound};
use crate::state::State;

/// The user a connection signed in as (`pusher:signin`).
#[derive(Debug)]
pub struct SignedIn {
    pub id: String,
    /// `user_info` from the signed `user_data`, used for presence without `channel_data`.
    pub user_info: Value,
}

/// One connection's protocol state. Only its own task touches it, so it needs no locks.
pub struct Session {
    pub state: Arc<State>,
    pub app: Arc<App>,
    pub handle: ConnHandle,
    /// `socket_id` as the string that signatures cover.
    pub socket_id: String,
    /// Subscribed channels; for presence channels, the member's `user_id` as raw JSON text
    /// (added to client events as `user_id`).
    pub channels: HashMap<String, Option<String>>,
    pub user: Option<SignedIn>,
    pub client_events: RateLimiter,
    /// Counted toward `max_connections`: from the start, or, with
    /// `authorized_connections_timeout`, once it has authorized itself (`admit`).
    pub admitted: bool,
}

impl Session {
    pub fn new(state: Arc<State>, app: Arc<App>, handle: ConnHandle, admitted: bool) -> Session {
        let client_events = RateLimiter::per_second(app.max_client_events_per_second);
        Session {
            socket_id: handle.socket_id.to_string(),
            state,
            app,
            handle,
            channels: HashMap::new(),
            user: None,
            client_events,
            admitted,
        }
    }

    /// The connection has authorized itself (a valid sign-in, or a valid signature for a
    /// private or presence channel): it now counts toward `max_connections`. False when that is
    /// full: the connection is then closed with 4004 and the request goes no further
    /// (docs/protocol.md §10.3).
    pub async fn admit(&mut self) -> bool {
        if self.admitted {
            return true;
        }
        let ns = self.state.adapter.local().namespace(&self.app.id);
        ns.remove_pending(self.handle.socket_id);
        self.admitted = self
            .state
            .adapter
            .add_connection(&self.app, self.handle.clone())
            .await;
        if !self.admitted {
            // Not counted: cleanup leaves the count alone.
            ns.add_pending(self.handle.clone());
            self.handle.close(crate::protocol::codes::Fatal::OverQuota);
        }
        self.admitted
    }

    /// Queues a frame for this connection.
    pub fn send(&self, frame: Frame) {
        self.handle.send(frame);
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.id.as_str())
    }

    /// Handles one text frame. A frame that cannot be understood gets a non-fatal 4200.
    pub async fn on_text(&mut self, text: &str) {
        match inbound::parse(text) {
            Err(e) => self.send(frames::error(codes::RECONNECT, &e.0, None)),
            Ok(Inbound::Ping) => self.send(frames::pong()),
            Ok(Inbound::Pong) => {}
            // Subscribe and sign-in are boxed: a connection task's state is as large as the
            // largest handler it awaits inline, idle or not, and these two are the largest
            // (696 and 504 bytes in a release build, against 240 for unsubscribe) and rare
            // enough that one small allocation each costs nothing measurable.
            Ok(Inbound::Subscribe(s)) => Box::pin(self.subscribe(s)).await,
            Ok(Inbound::Unsubscribe { channel }) => self.unsubscribe(&channel).await,
            Ok(Inbound::Signin { auth, user_data }) => {
                Box::pin(self.signin(&auth, &user_data)).await
            }
            Ok(Inbound::ClientEvent {
                event,
                channel,
                data,
            }) => {
                self.client_event(&event, channel.as_deref(), data.as_deref())
                    .await
            }
        }
    }

    /// Leaves every channel (announcing presence departures) and forgets the connection.
    /// Runs once, when the connection ends for whatever reason.
    pub async fn cleanup(&mut self) {
        let channels: Vec<String> = self.channels.drain().map(|(c, _)| c).collect();
        for channel in channels {
            self.leave(&channel).await;
        }
        let user = self.user.take().map(|u| u.id);
        if self.admitted {
            self.state
                .adapter
                .remove_connection(&self.app, self.handle.socket_id, user.as_deref())
                .await;
        } else {
            let local = self.state.adapter.local();
            local
                .namespace(&self.app.id)
                .remove_pending(self.handle.socket_id);
            // Not admitted, so never signed in (sign-in admits first): nothing to announce.
            if let Some(user) = user {
                local
                    .namespace(&self.app.id)
                    .remove_user(&user, self.handle.socket_id, false);
            }
        }
    }
}
