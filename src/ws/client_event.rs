//! Client events (`client-*`, Echo's whispers): the rules are `protocol::client_event::check`;
//! here an accepted event is counted, reported to webhooks and broadcast to the channel's other
//! subscribers, and a rejected one is answered with a non-fatal `pusher:error` 4301.

use std::time::Instant;

use serde_json::value::RawValue;

use super::session::Session;
use crate::protocol::client_event;
use crate::protocol::codes;
use crate::protocol::event::data_size;
use crate::protocol::frames;
use crate::webhooks::Event;

impl Session {
    pub(super) async fn client_event(
        &mut self,
        event: &str,
        channel: Option<&str>,
        data: Option<&RawValue>,
    ) {
        let size = data.map_or(0, |d| data_size(d.get()));
        let channels = &self.channels;
        let budget = &mut self.client_events;
        let checked = client_event::check(
            event,
            channel,
            size,
            self.app.client_event_policy(),
            |c| channels.contains_key(c),
            || budget.allow(Instant::now()),
        );
        let channel = match checked {
            Ok(channel) => channel,
            Err(rejection) => {
                if rejection.is_rate_limit() {
                    self.state
                        .metrics
                        .rate_limit_rejections
                        .with_label_values(&[&self.app.id])
                        .inc();
                }
                return self.send(frames::error(
                    codes::CLIENT_EVENT_REJECTED,
                    &rejection.to_string(),
                    channel,
                ));
            }
        };
        // On presence channels the sender's `user_id` (raw JSON) goes with the event.
        let user_id = self.channels.get(channel).cloned().flatten();
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
        let me = Some(self.handle.socket_id);
        // Recorded only where the app asks for client events too. Boxed, so that this rare
        // path adds nothing to the state every connection task carries.
        let recording = self
            .app
            .recording_for(channel)
            .filter(|r| r.record_client_events);
        match recording {
            Some(rec) => Box::pin(self.record_client_event(channel, frame, rec)).await,
            None => {
                self.state
                    .adapter
                    .broadcast(&self.app, channel, frame, me)
                    .await
            }
        }
    }

    /// Publishes a client event through the channel's history; gives the frame back when
    /// history cannot be written (a client has no retry to offer, so it is still delivered,
    /// unstamped).
    async fn record_client_event(
        &self,
        channel: &str,
        frame: frames::Frame,
        rec: &crate::app::Recording,
    ) {
        let me = Some(self.handle.socket_id);
        // `Deliver` never fails.
        let _ = self
            .state
            .publish_recorded(
                &self.app,
                channel,
                frame,
                me,
                rec,
                crate::app::OnHistoryError::Deliver,
            )
            .await;
    }
}
