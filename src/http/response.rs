//! JSON responses. Every answer of the HTTP API is a JSON object, errors included
//! (`{"error":"…"}`), because pusher-http-php treats anything else as a failure.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::Value;

use super::auth::AuthError;
use crate::limits::api::Limited;

pub type Body = Full<Bytes>;

/// A JSON response with the given status.
pub fn json(status: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// `200 {…}`.
pub fn ok(value: Value) -> Response<Body> {
    json(StatusCode::OK, &value)
}

/// An error with a message that says exactly what is wrong.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json(status, &serde_json::json!({"error": message.into()}))
}

/// Why the HTTP API refused a request. Each kind has its status; the text (`Display`) is the
/// body's `error`, saying exactly what is wrong.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed; the text says how.
    BadRequest(String),
    /// 401: the signature check failed.
    Unauthorized(AuthError),
    /// 403: the app exists but is disabled.
    AppDisabled { app_id: String },
    /// 404: no app has this id.
    AppNotFound { app_id: String },
    /// 404: no such endpoint under `/apps/{id}/`.
    UnknownEndpoint,
    /// 404: the channel keeps no history (no `[[apps.recovery]]` table names it).
    NotRecorded { channel: String },
    /// 405: the endpoint exists for another method.
    MethodNotAllowed { allowed: hyper::Method },
    /// 413: the whole body is over `max_http_body_size`.
    BodyTooLarge { limit: usize },
    /// 413: an event's data is over `max_event_payload_size`.
    EventTooLarge { size: usize, limit: usize },
    /// 429: over one of the app's API rate limits.
    RateLimited(Limited),
    /// 503: a recorded channel's history cannot be written (`on_history_error = "reject"`).
    HistoryUnavailable { channel: String },
    /// Item `index` of a batch was refused (with the item's own status).
    InBatch { index: usize, error: Box<ApiError> },
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError::BadRequest(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::AppDisabled { .. } => StatusCode::FORBIDDEN,
            ApiError::AppNotFound { .. }
            | ApiError::UnknownEndpoint
            | ApiError::NotRecorded { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge { .. } | ApiError::EventTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::HistoryUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InBatch { error, .. } => error.status(),
        }
    }

    /// The same refusal, for item `index` of a batch.
    pub fn in_batch(self, index: usize) -> ApiError {
        ApiError::InBatch {
            index,
            error: Box::new(self),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        error(self.status(), self.to_string())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::BadRequest(msg) => f.write_str(msg),
            ApiError::Unauthorized(e) => write!(f, "{e}"),
            ApiError::AppDisabled { app_id } => write!(f, "Application {app_id:?} is disabled"),
            ApiError::AppNotFound { app_id } => {
                write!(f, "No matching application for ID {app_id:?}")
            }
            ApiError::UnknownEndpoint => f.write_str("Not found: unknown API endpoint"),
            ApiError::NotRecorded { channel } => write!(
                f,
                "{channel:?} keeps no history: no [[apps.recovery]] table of this app names it"
            ),
            ApiError::MethodNotAllowed { allowed } => {
                write!(f, "Method not allowed: use {allowed} for this endpoint")
            }
            ApiError::BodyTooLarge { limit } => {
                write!(f, "Request body too large: the limit is {limit} bytes")
            }
            ApiError::EventTooLarge { size, limit } => write!(
                f,
                "Event data too large: {size} bytes; the limit is {limit} bytes"
            ),
            ApiError::RateLimited(limited) => write!(f, "{limited}"),
            ApiError::HistoryUnavailable { channel } => write!(
                f,
                "History of {channel:?} cannot be written right now; the event was not delivered (retry)"
            ),
            ApiError::InBatch { index, error } => write!(f, "batch[{index}]: {error}"),
        }
    }
}
