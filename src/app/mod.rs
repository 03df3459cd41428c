//! Apps: credentials, switches and limits, and the registry that finds an app by id or key.

mod recording;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::client_event::Policy;
use crate::protocol::event::EventLimits;
use crate::protocol::webhook::Kind;
pub use recording::{OnHistoryError, Recording};

/// One application, as configured in an `[[apps]]` table. Every limit is enforced; for the
/// count and size limits, 0 means unlimited.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct App {
    /// App id, used in HTTP API paths (`/apps/{id}/…`).
    pub id: String,
    /// Public key, used in the WebSocket path (`/app/{key}`) and in every signature.
    pub key: String,
    /// Secret that signs channel auth, user sign-in, HTTP requests and webhooks.
    pub secret: String,
    /// The secret before a rotation, still accepted on incoming signatures until the given
    /// Unix second, so that deployed backends can roll (the admin API's rotate-secret; kept in
    /// the app store's table, never in the file).
    #[serde(skip)]
    pub previous_secret: Option<(String, u64)>,
    /// A disabled app refuses connections (4003) and HTTP calls (403).
    pub enabled: bool,
    /// Whether `client-*` events (Echo's whispers) are allowed.
    pub enable_client_messages: bool,
    /// Whether every connection must sign in (`pusher:signin`) within
    /// `user_authentication_timeout` seconds, or be closed with 4009.
    pub enable_user_authentication: bool,
    /// Seconds a connection has to sign in when `enable_user_authentication` is on.
    pub user_authentication_timeout: u64,
    /// Seconds a connection has to authorize itself, by signing in or by subscribing to a
    /// private or presence channel, before it is closed with 4009 (0 = off); until then it
    /// does not count toward `max_connections` (docs/protocol.md §10.3).
    pub authorized_connections_timeout: u64,
    /// Host patterns whose pages may connect (`Origin` header; `*` wildcards, scheme and port
    /// ignored); empty or `["*"]` allows every origin (docs/protocol.md §10.4).
    pub allowed_origins: Vec<String>,
    /// Whether a connection without an `Origin` header (a native or server-side client) is let
    /// in when `allowed_origins` restricts origins.
    pub allow_missing_origin: bool,
    /// Simultaneous connections for the app (0 = unlimited); over it, new ones get 4004.
    pub max_connections: u64,
    /// Distinct users per presence channel (0 = unlimited).
    pub max_presence_members_per_channel: u64,
    /// Bytes of a presence member's `channel_data` (0 = unlimited).
    pub max_presence_member_size: usize,
    /// Characters of a channel name (at least 1).
    pub max_channel_name_length: usize,
    /// Characters of an event name (at least 1).
    pub max_event_name_length: usize,
    /// Bytes of an event's `data`, HTTP or client event (0 = unlimited).
    pub max_event_payload_size: usize,
    /// Channels one HTTP trigger may name (0 = unlimited).
    pub max_event_channels: usize,
    /// Events in one `batch_events` call (0 = unlimited).
    pub max_event_batch_size: usize,
    /// Client events per second per connection (0 = unlimited).
    pub max_client_events_per_second: u32,
    /// Events per second the HTTP API accepts for the app, batch items counted one by one
    /// (0 = unlimited); over it, 429.
    pub max_backend_events_per_second: u32,
    /// HTTP API read requests (channel queries, users, connections) per second (0 = unlimited);
    /// over it, 429.
    pub max_read_requests_per_second: u32,
    /// Send several webhook events in one request (Pusher's "batch webhooks").
    pub webhook_batching: bool,
    /// Send `pusher_internal:subscription_count` to a channel's subscribers when its count
    /// changes (docs/protocol.md §10.2).
    pub enable_subscription_count: bool,
    /// Send `pusher_internal:watchlist_events` to signed-in connections about the users in
    /// their signed watchlist (docs/protocol.md §10.1).
    pub enable_watchlist_events: bool,
    /// Channels that keep history for missed-message recovery (`[[apps.recovery]]`); none by
    /// default.
    pub recovery: Vec<Recording>,
    /// What a publish on a recorded channel does when history cannot be written.
    pub on_history_error: OnHistoryError,
    /// Webhook targets (`[[apps.webhooks]]`).
    pub webhooks: Vec<Webhook>,
}

/// One webhook target of an app.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Webhook {
    /// `http://` or `https://` URL that receives the POSTs.
    pub url: String,
    /// Which events to send; empty means all of them. An unknown name is refused by the
    /// config parser, naming the known ones.
    pub event_types: Vec<Kind>,
    /// Only events whose channel matches.
    pub filter: WebhookFilter,
    /// Extra request headers (they never replace X-Pusher-Key / X-Pusher-Signature).
    pub headers: std::collections::BTreeMap<String, String>,
}

/// Channel-name filter of a webhook target; empty parts match everything.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookFilter {
    pub channel_name_starts_with: String,
    pub channel_name_ends_with: String,
}

impl Default for App {
    fn default() -> Self {
        App {
            id: String::new(),
            key: String::new(),
            secret: String::new(),
            previous_secret: None,
            enabled: true,
            enable_client_messages: false,
            enable_user_authentication: false,
            user_authentication_timeout: 30,
            authorized_connections_timeout: 0,
            allowed_origins: Vec::new(),
            allow_missing_origin: false,
            max_connections: 0,
            max_presence_members_per_channel: 100,
            max_presence_member_size: 1024,
            max_channel_name_length: 200,
            max_event_name_length: 200,
            max_event_payload_size: 10 * 1024,
            max_event_channels: 100,
            max_event_batch_size: 10,
            max_client_events_per_second: 10,
            max_backend_events_per_second: 0,
            max_read_requests_per_second: 0,
            webhook_batching: false,
            enable_subscription_count: false,
            enable_watchlist_events: false,
            recovery: Vec::new(),
            on_history_error: OnHistoryError::Reject,
            webhooks: Vec::new(),
        }
    }
}

impl App {
    /// The development app a newcomer gets when nothing is configured (Soketi's defaults, so an
    /// existing Soketi `.env` works).
    pub fn development() -> App {
        App {
            id: "app-id".into(),
            key: "app-key".into(),
            secret: "app-secret".into(),
            enable_client_messages: true,
            ..App::default()
        }
    }

    /// The secrets an incoming signature may use now: the secret, and the previous one during
    /// its grace period. Outgoing signatures (webhooks) use `secret` only.
    pub fn accepted_secrets(&self) -> impl Iterator<Item = &str> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        std::iter::once(self.secret.as_str()).chain(
            self.previous_secret
                .as_ref()
                .filter(|(_, until)| now < *until)
                .map(|(s, _)| s.as_str()),
        )
    }

    /// Checks one app's fields; `at` names it in messages (`apps[2]`).
    pub fn validate(&self, at: &str) -> Result<(), String> {
        for (field, value) in [
            ("id", &self.id),
            ("key", &self.key),
            ("secret", &self.secret),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{at}.{field}: must be set and non-empty"));
            }
        }
        if self.key.contains('/') || self.key.contains(':') {
            return Err(format!("{at}.key: must not contain '/' or ':'"));
        }
        if self.id.contains('/') {
            return Err(format!("{at}.id: must not contain '/'"));
        }
        if self.max_channel_name_length == 0 {
            return Err(format!("{at}.max_channel_name_length: must be at least 1"));
        }
        if self.max_event_name_length == 0 {
            return Err(format!("{at}.max_event_name_length: must be at least 1"));
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://"))
                || w.url.parse::<hyper::Uri>().is_err()
            {
                return Err(format!(
                    "{at}.webhooks[{i}].url: {:?} is not an http:// or https:// URL",
                    w.url
                ));
            }
            for name in w.headers.keys() {
                if name.parse::<hyper::header::HeaderName>().is_err() {
                    return Err(format!(
                        "{at}.webhooks[{i}].headers: {name:?} is not a valid header name"
                    ));
                }
            }
        }
        for (i, r) in self.recovery.iter().enumerate() {
            r.validate(&format!("{at}.recovery[{i}]"))?;
        }
        if self.enable_user_authentication && self.user_authentication_timeout == 0 {
            return Err(format!("{at}.user_authentication_timeout: must be at least 1 when enable_user_authentication is on"));
        }
        for (i, pattern) in self.allowed_origins.iter().enumerate() {
            crate::protocol::origin::check_pattern(pattern)
                .map_err(|e| format!("{at}.allowed_origins[{i}]: {e}"))?;
        }
        Ok(())
    }

    /// Whether a WebSocket with this `Origin` header (`None`: none sent) may connect.
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        crate::protocol::origin::allowed(&self.allowed_origins, origin, self.allow_missing_origin)
    }

    /// Whether subscribers of `channel` get its live subscription count: the app asks for it,
    /// and the channel is neither presence (which has its member events) nor a user's own.
    pub fn counts_subscriptions(&self, channel: &str) -> bool {
        let kind = crate::protocol::channel_name::ChannelKind::of(channel);
        self.enable_subscription_count && !kind.presence && !kind.server_to_user
    }

    /// The recovery table that applies to `channel`, if it is recorded.
    pub fn recording_for(&self, channel: &str) -> Option<&Recording> {
        self.recovery.iter().find(|r| r.covers(channel))
    }

    /// The limits on one event, for `protocol::event::check`.
    pub fn event_limits(&self) -> EventLimits {
        EventLimits {
            max_name_length: self.max_event_name_length,
            max_data_size: self.max_event_payload_size,
        }
    }

    /// What the app allows of client events, for `protocol::client_event::check`.
    pub fn client_event_policy(&self) -> Policy {
        Policy {
            enabled: self.enable_client_messages,
            limits: self.event_limits(),
            per_second: self.max_client_events_per_second,
        }
    }
}

/// All configured apps, looked up by id (HTTP API) or key (WebSocket).
#[derive(Debug, Default)]
pub struct AppRegistry {
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl AppRegistry {
    /// Builds the registry; ids and keys must be unique.
    pub fn new(apps: Vec<App>) -> Result<AppRegistry, String> {
        let mut reg = AppRegistry::default();
        for (i, app) in apps.into_iter().enumerate() {
            app.validate(&format!("apps[{i}]"))?;
            if reg.by_id.contains_key(&app.id) {
                return Err(format!("apps[{i}].id: {:?} is used by another app", app.id));
            }
            if reg.by_key.contains_key(&app.key) {
                return Err(format!(
                    "apps[{i}].key: {:?} is used by another app",
                    app.key
                ));
            }
            let app = Arc::new(app);
            reg.by_id.insert(app.id.clone(), app.clone());
            reg.by_key.insert(app.key.clone(), app);
        }
        Ok(reg)
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Every app.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_id.values()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
