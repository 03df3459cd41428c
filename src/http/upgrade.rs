//! Upgrades `GET /app/{key}` to a WebSocket with hyper, then hands the stream to the
//! connection loop (`ws::connection`). App and protocol checks happen after the upgrade so that their errors reach
//! pusher-js as `pusher:error` plus a close code (docs/protocol.md §0).

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::response::{self, Body};
use crate::protocol::query::parse_query;
use crate::state::State;

fn header_has(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Answers the upgrade request from the TCP peer `peer` and spawns the connection task.
pub fn upgrade(
    state: Arc<State>,
    mut req: Request<Incoming>,
    app_key: String,
    peer: SocketAddr,
) -> Response<Body> {
    if req.method() != Method::GET {
        return response::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed: use GET",
        );
    }
    if state.is_draining() {
        return response::error(StatusCode::SERVICE_UNAVAILABLE, "Server shutting down");
    }
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_upgrade = header_has(&req, header::CONNECTION, "upgrade")
        && header_has(&req, header::UPGRADE, "websocket");
    let (Some(key), true) = (key, is_upgrade) else {
        return response::error(
            StatusCode::UPGRADE_REQUIRED,
            "This is the WebSocket endpoint: connect with a WebSocket client",
        );
    };
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return response::error(
            StatusCode::BAD_REQUEST,
            "Unsupported Sec-WebSocket-Version (need 13)",
        );
    }
    let protocol = req.uri().query().and_then(|q| {
        parse_query(q)
            .into_iter()
            .find(|(k, _)| k == "protocol")
            .map(|(_, v)| v)
    });
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let ip = state.trusted_proxies.client_ip(peer.ip(), forwarded);
    // Checked after the upgrade (a refused origin gets 4009, which pusher-js does not retry;
    // a 403 here would make it retry forever).
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let within_rate = state.connection_rate.allow(ip, std::time::Instant::now());
    // The plain TCP socket's descriptor, which the accept loop put here (none on TLS).
    let socket = req
        .extensions()
        .get::<crate::channels::direct::SocketFd>()
        .copied();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                // tungstenite zeroes its whole read buffer before every read, and clients send
                // small frames: a small buffer saves memory per connection and a memset per poll.
                let ws_config = WebSocketConfig::default()
                    .read_buffer_size(512)
                    .write_buffer_size(8192)
                    .max_message_size(Some(state.config.max_message_size))
                    .max_frame_size(Some(state.config.max_message_size));
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(ws_config),
                )
                .await;
                if within_rate {
                    crate::ws::connection::run(state, ws, app_key, protocol, origin, socket).await;
                } else {
                    crate::ws::connection::refuse_over_rate(&state, ws, &app_key).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut res = Response::new(Body::default());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}
