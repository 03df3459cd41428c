//! JSON responses. Every answer of the HTTP API is a JSON object, errors included
//! (`{"error":"…"}`), because pusher-http-php treats anything else as a failure.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::Value;

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

/// An HTTP API failure: a status and the explanation that goes in the body.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }

    pub fn into_response(self) -> Response<Body> {
        error(self.0, self.1)
    }
}
