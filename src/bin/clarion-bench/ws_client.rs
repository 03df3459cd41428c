//! A lean WebSocket client: small buffers, one task per connection at most.

use std::net::{IpAddr, SocketAddr};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::stream::Stream;
use crate::target::Target;

pub type Ws = WebSocketStream<Stream>;

/// Opens a connection (from `source` when given, to spread over 127.0.0.x addresses) and reads
/// `connection_established`; returns the stream and its socket id.
pub async fn connect(t: &Target, source: Option<IpAddr>) -> Result<(Ws, String), String> {
    let stream = open(t, source).await?;
    let url = format!("ws://{}:{}{}", t.host, t.port, t.ws_path());
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(cfg))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let socket_id = socket_id_of(&next_json(&mut ws).await?)?;
    Ok((ws, socket_id))
}

/// The socket id in a `pusher:connection_established` message (an error for any other).
pub fn socket_id_of(first: &Value) -> Result<String, String> {
    if first["event"] != "pusher:connection_established" {
        return Err(format!("unexpected first message {first}"));
    }
    let data: Value =
        serde_json::from_str(first["data"].as_str().unwrap_or("{}")).map_err(|e| e.to_string())?;
    Ok(data["socket_id"]
        .as_str()
        .ok_or("no socket_id")?
        .to_string())
}

/// A connection to the server (from `source` when given), TLS when the target is.
pub async fn open(t: &Target, source: Option<IpAddr>) -> Result<Stream, String> {
    crate::stream::wrap(t, open_tcp(t, source).await?).await
}

/// A TCP connection to the server (from `source` when given), with Nagle off.
pub async fn open_tcp(t: &Target, source: Option<IpAddr>) -> Result<TcpStream, String> {
    // A source port can still collide with a TIME_WAIT connection of an earlier run (the
    // connect then fails with EADDRNOTAVAIL): try a few fresh source addresses.
    let mut last = String::new();
    for _ in 0..4 {
        match open_tcp_once(t, source).await {
            Ok(c) => return Ok(c),
            Err(e) if e.contains("os error 99") => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

async fn open_tcp_once(t: &Target, source: Option<IpAddr>) -> Result<TcpStream, String> {
    let addr: SocketAddr = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("resolve {}: {e}", t.host))?
        .next()
        .ok_or("no address")?;
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    // Choosing the source port ourselves matters: with tens of thousands of connections to one
    // address, the kernel's own ephemeral-port search dominated the client's CPU (60% of it in
    // __inet_hash_connect/__inet_check_established), capping the connect rate it could measure.
    if addr.ip().is_loopback() && addr.is_ipv4() {
        let _ = sock.set_reuseaddr(true);
        let (ip, first_port) = next_source(source);
        let mut bound = sock.bind(SocketAddr::new(ip, first_port)).is_ok();
        for _ in 0..8 {
            if bound {
                break;
            }
            bound = sock
                .bind(SocketAddr::new(ip, next_source(Some(ip)).1))
                .is_ok();
        }
        // Ports still in TIME_WAIT from earlier runs: let the kernel search after all.
        if !bound {
            sock.bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("bind {ip}: {e}"))?;
        }
    } else if let Some(ip) = source {
        sock.bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = sock
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The next text message, parsed.
pub async fn next_json(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str()).map_err(|e| e.to_string())
            }
            Some(Ok(Message::Close(f))) => return Err(format!("closed: {f:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("connection ended".into()),
        }
    }
}

/// Subscribes and waits for `subscription_succeeded`.
pub async fn subscribe(
    ws: &mut Ws,
    channel: &str,
    auth: Option<String>,
    channel_data: Option<String>,
) -> Result<(), String> {
    let msg = subscribe_message(channel, auth, channel_data);
    ws.send(Message::Text(msg.into()))
        .await
        .map_err(|e| e.to_string())?;
    while !subscribed(&next_json(ws).await?, channel)? {}
    Ok(())
}

/// The `pusher:subscribe` message for `channel`.
pub fn subscribe_message(
    channel: &str,
    auth: Option<String>,
    channel_data: Option<String>,
) -> String {
    let mut data = json!({"channel": channel});
    if let Some(a) = auth {
        data["auth"] = Value::String(a);
    }
    if let Some(d) = channel_data {
        data["channel_data"] = Value::String(d);
    }
    json!({"event": "pusher:subscribe", "data": data}).to_string()
}

/// Whether `m` confirms the subscription to `channel`: true for `subscription_succeeded`, an
/// error for a refusal, false for anything else (keep waiting).
pub fn subscribed(m: &Value, channel: &str) -> Result<bool, String> {
    match m["event"].as_str() {
        Some("pusher_internal:subscription_succeeded") if m["channel"] == channel => Ok(true),
        Some("pusher:subscription_error") | Some("pusher:error") => {
            Err(format!("subscribe {channel}: {m}"))
        }
        _ => Ok(false),
    }
}

/// `127.0.0.(1 + i % n)`: spreads connections over `n` loopback sources (beyond ~28k
/// connections one source address runs out of ephemeral ports).
pub fn source_ip(i: usize, n: usize) -> Option<IpAddr> {
    if n <= 1 {
        return None;
    }
    Some(IpAddr::from([127, 0, 0, (1 + i % n) as u8]))
}

/// The next source address: `source` or one of 127.0.0.1..=127.0.0.16 in turn (distinct
/// addresses do not compete for ports), with ports handed out round-robin over 20000..=60999
/// from a random start so that consecutive runs rarely reuse ports still in TIME_WAIT.
fn next_source(source: Option<IpAddr>) -> (IpAddr, u16) {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    static START: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = *START.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        (nanos ^ std::process::id().wrapping_mul(7919)) % 41_000
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ip = source.unwrap_or(IpAddr::from([127, 0, 0, 1 + (n % 16) as u8]));
    (ip, (20_000 + (start + n / 16) % 41_000) as u16)
}
