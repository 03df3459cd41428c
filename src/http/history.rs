//! `GET /apps/{id}/channels/{channel}/history` and `DELETE` on the same path: a recorded
//! channel's history, signed like the rest of the API (docs/recovery.md). `limit=0` answers
//! only the position, for a controller that renders a page: read the position, then the
//! database, and let the page resume from that position when it subscribes.

use std::sync::Arc;

use hyper::Response;
use serde_json::{json, Value};

use super::response::{self, ApiError, Body};
use crate::adapter::HistoryQuery;
use crate::app::{App, Recording};
use crate::protocol::channel_name;
use crate::protocol::query::param;
use crate::state::State;

/// The channel's recovery table, or the 404 that says it keeps no history.
fn recording<'a>(app: &'a App, channel: &str) -> Result<&'a Recording, ApiError> {
    channel_name::validate(channel, app.max_channel_name_length)
        .map_err(|e| ApiError::bad_request(format!("Invalid channel {channel:?}: {e}")))?;
    app.recording_for(channel)
        .ok_or_else(|| ApiError::NotRecorded {
            channel: channel.to_string(),
        })
}

/// Reads `epoch`, `after` and `limit` (default and most: `max_replay`).
fn query_of(query: &[(String, String)], rec: &Recording) -> Result<HistoryQuery, ApiError> {
    let number = |key: &str| -> Result<Option<u64>, ApiError> {
        param(query, key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("{key} must be a non-negative integer"))
                })
            })
            .transpose()
    };
    let limit = number("limit")?.map_or(rec.max_replay, |l| l as usize);
    if limit > rec.max_replay {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is over this channel's max_replay ({})",
            rec.max_replay
        )));
    }
    Ok(HistoryQuery {
        epoch: param(query, "epoch").map(str::to_string),
        after: number("after")?.unwrap_or(0),
        limit,
    })
}

pub async fn read(
    state: &Arc<State>,
    app: &Arc<App>,
    channel: &str,
    query: &[(String, String)],
) -> Result<Response<Body>, ApiError> {
    let rec = recording(app, channel)?;
    let q = query_of(query, rec)?;
    let page = state
        .adapter
        .history(app, channel, &q, rec)
        .await
        .map_err(|_| ApiError::HistoryUnavailable {
            channel: channel.to_string(),
        })?;
    if q.limit == 0 {
        return Ok(response::ok(json!({"epoch": page.epoch, "top": page.top})));
    }
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|item| {
            // The stored frame is JSON this server wrote; event and data are read back from it.
            let frame: Value = serde_json::from_str(item.frame.as_str()).unwrap_or_default();
            json!({
                "offset": item.offset,
                "event": frame.get("event"),
                "data": frame.get("data"),
                "time_ms": item.time_ms,
            })
        })
        .collect();
    Ok(response::ok(json!({
        "epoch": page.epoch,
        "top": page.top,
        "complete": page.complete,
        "items": items,
    })))
}

pub async fn purge(
    state: &Arc<State>,
    app: &Arc<App>,
    channel: &str,
) -> Result<Response<Body>, ApiError> {
    recording(app, channel)?;
    state
        .adapter
        .purge_history(app, channel)
        .await
        .map_err(|_| ApiError::HistoryUnavailable {
            channel: channel.to_string(),
        })?;
    Ok(response::ok(json!({})))
}
