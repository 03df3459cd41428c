//! Client events (`client-*`, Echo's whispers), with every rule of protocol.md §2.3.
//! A rejected event gets a non-fatal `pusher:error` 4301 and is delivered to no one.

use std::time::Instant;

use serde_json::value::RawValue;

use super::session::Session;
use crate::protocol::channel_name::ChannelKind;
use crate::protocol::codes;
use crate::protocol::frames;
use crate::webhooks::Event;

impl Session {
    pub(super) async fn client_event(
        &mut self,
        event: &str,
        channel: Option<&str>,
        data: Option<&RawValue>,
    ) {
        match self.check_client_event(event, channel, data) {
            Err(message) => {
                if message.contains("rate limit") {
                    self.state
                        .metrics
                        .rate_limit_rejections
                        .with_label_values(&[&self.app.id])
                        .inc();
                }
                self.send(frames::error(
                    codes::CLIENT_EVENT_REJECTED,
                    &message,
                    channel,
                ));
            }
            Ok((channel, user_id)) => {
                self.state
                    .metrics
                    .client_events
                    .with_label_values(&[&self.app.id])
                    .inc();
                let hook_user = user_id
                    .as_deref()
                    .and_then(|u| serde_json::from_str(u).ok());
                self.state.webhooks.emit(
                    &self.app,
                    Event::client_event(
                        channel,
                        event,
                        data.map(RawValue::get),
                        &self.socket_id,
                        hook_user,
                    ),
                );
                let frame = frames::envelope(
                    event,
                    Some(channel),
                    data.map(RawValue::get),
                    user_id.as_deref(),
                );
                self.state
                    .adapter
                    .broadcast(&self.app, channel, frame, Some(self.handle.socket_id))
                    .await;
            }
        }
    }

    /// Returns the channel and, on presence channels, the sender's `user_id` as raw JSON.
    fn check_client_event<'a>(
        &mut self,
        event: &str,
        channel: Option<&'a str>,
        data: Option<&RawValue>,
    ) -> Result<(&'a str, Option<String>), String> {
        if !event.starts_with("client-") {
            return Err(format!(
                "Event {event:?} rejected: clients may only send events whose name starts with client-"
            ));
        }
        let channel = channel.ok_or("Client event rejected: it needs a channel")?;
        if !self.app.enable_client_messages {
            return Err("Client event rejected: client events are disabled for this app".into());
        }
        let kind = ChannelKind::of(channel);
        if !kind.private || kind.server_to_user {
            return Err("Client event rejected: client events are only allowed on private and presence channels".into());
        }
        if kind.encrypted {
            return Err(
                "Client event rejected: client events are not supported on encrypted channels"
                    .into(),
            );
        }
        let Some(member) = self.channels.get(channel) else {
            return Err(format!(
                "Client event rejected: the connection is not subscribed to {channel:?}"
            ));
        };
        let user_id = member.clone();
        let name_len = event.chars().count();
        if name_len > self.app.max_event_name_length {
            return Err(format!(
                "Client event rejected: the event name is {name_len} characters; the limit is {}",
                self.app.max_event_name_length
            ));
        }
        let size = data.map_or(0, |d| d.get().len());
        let max = self.app.max_event_payload_size;
        if max != 0 && size > max {
            return Err(format!(
                "Client event rejected: data is {size} bytes; the limit is {max} bytes"
            ));
        }
        if !self.client_events.allow(Instant::now()) {
            return Err(format!(
                "Client event rejected due to rate limit ({} per second)",
                self.app.max_client_events_per_second
            ));
        }
        Ok((channel, user_id))
    }
}
