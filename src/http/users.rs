//! `POST /users/{id}/terminate_connections`: close every connection signed in as that user.

use std::sync::Arc;

use hyper::Response;
use serde_json::json;

use super::response::{self, ApiError, Body};
use crate::app::App;
use crate::state::State;

pub async fn terminate(
    state: &Arc<State>,
    app: &Arc<App>,
    user_id: &str,
) -> Result<Response<Body>, ApiError> {
    if user_id.is_empty() {
        return Err(ApiError::bad_request("user id must not be empty"));
    }
    state.adapter.terminate_user(app, user_id).await;
    Ok(response::ok(json!({})))
}
