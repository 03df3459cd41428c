//! `pusher:subscribe` and `pusher:unsubscribe` for every channel type.

use serde_json::Value;

use super::session::Session;
use crate::adapter::SubscribeError;
use crate::protocol::channel_name::{self, ChannelKind, SERVER_TO_USER_PREFIX};
use crate::protocol::codes::subscription as status;
use crate::protocol::frames;
use crate::protocol::inbound::Subscribe;
use crate::protocol::presence::{self, Member, MemberError};
use crate::protocol::recovery;
use crate::protocol::signature;
use crate::webhooks::Event;

impl Session {
    pub(super) async fn subscribe(&mut self, s: Subscribe) {
        let channel = s.channel.as_str();
        if let Err(e) = channel_name::validate(channel, self.app.max_channel_name_length) {
            return self.send(frames::subscription_error(
                channel,
                "InvalidChannel",
                &format!("Invalid channel name: {e}"),
                status::INVALID_CHANNEL,
            ));
        }
        let kind = ChannelKind::of(channel);
        if kind.server_to_user {
            let allowed = self
                .user_id()
                .is_some_and(|id| channel.strip_prefix(SERVER_TO_USER_PREFIX) == Some(id));
            if !allowed {
                return self.auth_error(
                    channel,
                    "Only the connection signed in (pusher:signin) as this user may subscribe to its #server-to-user- channel",
                );
            }
        } else if kind.private {
            let auth = s.auth.as_deref().unwrap_or("");
            let data = s.channel_data.as_deref();
            if !self.app.accepted_secrets().any(|secret| {
                signature::verify_channel_auth(
                    &self.app.key,
                    secret,
                    &self.socket_id,
                    channel,
                    data,
                    auth,
                )
            }) {
                let signed = match data {
                    Some(d) => format!("{}:{channel}:{d}", self.socket_id),
                    None => format!("{}:{channel}", self.socket_id),
                };
                return self.auth_error(
                    channel,
                    &format!("Invalid signature: expected \"{}:\" followed by the HMAC-SHA256 hex digest of {signed:?} with the app secret", self.app.key),
                );
            }
            // A valid signature authorizes the connection (docs/protocol.md §10.3).
            if !self.admit().await {
                return;
            }
        }
        let member = if kind.presence {
            match self.presence_member(channel, s.channel_data.as_deref()) {
                Ok(m) => Some(m),
                Err(()) => return,
            }
        } else {
            None
        };
        let member_json = member.as_ref().map(|m| m.user_id.to_string());
        let added = member
            .as_ref()
            .map(|m| (m.user_id.clone(), m.user_info.clone()));
        // Recovery: only on a recorded channel and only when the subscribe opted in; a
        // malformed request is a plain subscribe. Boxed: what this function holds across its
        // awaits is part of every connection task's state, idle or not.
        let recovery = self.app.recording_for(channel).zip(
            s.clarion
                .as_deref()
                .and_then(recovery::Request::parse)
                .map(Box::new),
        );
        let adapter = &self.state.adapter;
        let result = match &recovery {
            Some((rec, request)) => {
                adapter
                    .subscribe_recovering(&self.app, channel, &self.handle, member, request, rec)
                    .await
            }
            None => {
                adapter
                    .subscribe(&self.app, channel, &self.handle, member)
                    .await
            }
        };
        let subscribed = match result {
            Ok(s) => s,
            Err(SubscribeError::ChannelFull { limit }) => {
                return self.send(frames::subscription_error(
                    channel,
                    "LimitReached",
                    &format!(
                        "Presence channel is full: it already has the maximum of {limit} members"
                    ),
                    status::CHANNEL_FULL,
                ))
            }
        };
        self.channels.insert(channel.to_string(), member_json);
        if let Some(outcome) = subscribed.recovery {
            let m = &self.state.metrics;
            let result = outcome.map_or_else(|f| f.reason(), |_| "recovered");
            m.recoveries
                .with_label_values(&[self.app.id.as_str(), result])
                .inc();
            if let Ok(replayed) = outcome {
                m.recovery_replayed
                    .with_label_values(&[&self.app.id])
                    .inc_by(replayed as u64);
            }
        }
        match subscribed.presence {
            _ if subscribed.announced => {}
            Some(roster) => self.send(frames::presence_succeeded(channel, roster.ids, roster.hash)),
            None => self.send(frames::subscription_succeeded(channel)),
        }
        let hooks = &self.state.webhooks;
        if subscribed.occupied {
            hooks.emit(&self.app, Event::channel_occupied(channel));
        }
        if subscribed.added && !kind.presence {
            hooks.emit(
                &self.app,
                Event::subscription_count(channel, subscribed.subscription_count),
            );
        }
        if let (true, Some((user_id, user_info))) = (subscribed.member_added, added) {
            hooks.emit(&self.app, Event::member_added(channel, &user_id));
            let frame = frames::member_added(channel, &user_id, &user_info);
            self.state
                .adapter
                .broadcast(&self.app, channel, frame, Some(self.handle.socket_id))
                .await;
        }
        if kind.cache {
            match self.state.adapter.get_cache(&self.app, channel).await {
                Some(cached) => self.send(cached.frame),
                None => {
                    self.send(frames::cache_miss(channel));
                    self.state
                        .webhooks
                        .emit(&self.app, Event::cache_miss(channel));
                }
            }
        }
        if subscribed.added {
            self.announce_count(
                channel,
                subscribed.subscription_count,
                subscribed.count_version,
            )
            .await;
        }
    }

    /// Tells the channel's subscribers its new count, when the app asks for it and the count
    /// is the cluster's (docs/protocol.md §10.2).
    async fn announce_count(&self, channel: &str, count: usize, version: u64) {
        if version != 0 && count > 0 && self.app.counts_subscriptions(channel) {
            self.state
                .adapter
                .announce_count(&self.app, channel, count, version)
                .await;
        }
    }

    /// Reads the member from `channel_data` (or from the sign-in when it is absent) and checks
    /// its size; the parsing itself is `protocol::presence::parse_member`, shared with the
    /// fuzzer. On error the subscription error has already been sent.
    fn presence_member(&self, channel: &str, channel_data: Option<&str>) -> Result<Member, ()> {
        let Some(data) = channel_data else {
            return match &self.user {
                Some(u) => Ok(Member {
                    key: u.id.clone(),
                    user_id: Value::String(u.id.clone()),
                    user_info: u.user_info.clone(),
                }),
                None => {
                    self.auth_error(
                        channel,
                        "Presence channels need channel_data (or a signed-in connection)",
                    );
                    Err(())
                }
            };
        };
        match presence::parse_member(data, self.app.max_presence_member_size) {
            Ok(m) => Ok(m),
            Err(e @ MemberError::TooBig { .. }) => {
                self.send(frames::subscription_error(
                    channel,
                    "LimitReached",
                    &e.to_string(),
                    status::MEMBER_TOO_BIG,
                ));
                Err(())
            }
            Err(e @ MemberError::NoUserId) => {
                self.auth_error(channel, &e.to_string());
                Err(())
            }
        }
    }

    fn auth_error(&self, channel: &str, message: &str) {
        self.send(frames::subscription_error(
            channel,
            "AuthError",
            message,
            status::AUTH,
        ));
    }

    pub(super) async fn unsubscribe(&mut self, channel: &str) {
        if self.channels.remove(channel).is_some() {
            self.leave(channel).await;
        }
    }

    /// Removes the subscription from the adapter and tells the others if a member left.
    pub(super) async fn leave(&mut self, channel: &str) {
        let left = self
            .state
            .adapter
            .unsubscribe(&self.app, channel, self.handle.socket_id)
            .await;
        let hooks = &self.state.webhooks;
        if left.was_subscribed && !ChannelKind::of(channel).presence {
            hooks.emit(
                &self.app,
                Event::subscription_count(channel, left.subscription_count),
            );
            self.announce_count(channel, left.subscription_count, left.count_version)
                .await;
        }
        if let Some(user_id) = left.member_removed {
            hooks.emit(&self.app, Event::member_removed(channel, &user_id));
            let frame = frames::member_removed(channel, &user_id);
            self.state
                .adapter
                .broadcast(&self.app, channel, frame, None)
                .await;
        }
        if left.vacated {
            self.state
                .webhooks
                .emit(&self.app, Event::channel_vacated(channel));
        }
    }
}
