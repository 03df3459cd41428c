//! A minimal WebSocket client for the receiving side of `fanout`.
//!
//! The load generator shares the machine with the server, so every microsecond it spends per
//! received message is taken from the server it measures. Profiled on `fanout --subscribers
//! 1000 --rate 500`, the tungstenite stream spent about a third of the generator's user time in
//! its per-message machinery (a `Bytes` per message, stream/waker bookkeeping, UTF-8 checks).
//! This client does the handshake itself and then parses server frames in place from one
//! read buffer per connection: no allocation per message unless a message is fragmented.

use std::net::IpAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stream::Stream;
use crate::target::{find, Target};
use crate::ws_client;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// One parsed frame header: where its payload lies in the buffer and how long the frame is.
#[derive(Debug, PartialEq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    /// Payload start and end, relative to the start of the frame.
    pub payload: (usize, usize),
    /// Masking key, which a server must not send, but a frame is still read correctly with one.
    pub mask: Option<[u8; 4]>,
}

/// Parses the frame at the start of `buf`: `Ok(None)` when more bytes are needed.
pub fn parse_frame(buf: &[u8]) -> Result<Option<Frame>, String> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(format!("reserved bits set in frame byte 0x{b0:02x}"));
    }
    let (len, mut at) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        match buf
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
        {
            Some(m) => {
                at += 4;
                Some(m)
            }
            None => return Ok(None),
        }
    } else {
        None
    };
    let len = usize::try_from(len).map_err(|_| format!("frame of {len} bytes"))?;
    if buf.len() < at + len {
        return Ok(None);
    }
    Ok(Some(Frame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload: (at, at + len),
        mask,
    }))
}

/// A client connection reading frames from its own buffer.
pub struct RawWs {
    stream: Stream,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// A fragmented message being gathered.
    partial: Vec<u8>,
}

impl RawWs {
    /// Connects, upgrades and reads `connection_established`; returns the socket id too.
    pub async fn connect(t: &Target, source: Option<IpAddr>) -> Result<(RawWs, String), String> {
        RawWs::connect_over(t, ws_client::open(t, source).await?).await
    }

    /// Like `connect`, over a connection the caller opened (e.g. with a small receive buffer,
    /// for a client that stops reading).
    pub async fn connect_over(t: &Target, mut stream: Stream) -> Result<(RawWs, String), String> {
        let key = rand::random::<u128>().to_be_bytes();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            t.ws_path(),
            t.host,
            t.port,
            base64(&key)
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let mut ws = RawWs {
            stream,
            buf: vec![0; 8192],
            start: 0,
            end: 0,
            partial: Vec::new(),
        };
        let head_end = loop {
            if let Some(i) = find(&ws.buf[..ws.end], b"\r\n\r\n") {
                break i + 4;
            }
            if ws.end == ws.buf.len() {
                return Err("handshake: response head too long".into());
            }
            ws.fill().await?;
        };
        let status = ws.buf.get(..head_end).unwrap_or_default();
        if !status.starts_with(b"HTTP/1.1 101") {
            let line = String::from_utf8_lossy(status);
            return Err(format!(
                "handshake: {}",
                line.lines().next().unwrap_or_default()
            ));
        }
        ws.start = head_end;
        let socket_id = ws_client::socket_id_of(&ws.next_json().await?)?;
        Ok((ws, socket_id))
    }

    /// Subscribes to a public channel and waits for `subscription_succeeded`.
    pub async fn subscribe(&mut self, channel: &str) -> Result<(), String> {
        self.subscribe_with(channel, None).await.map(|_| ())
    }

    /// Subscribes to a public channel, with a `clarion` member (missed-message recovery,
    /// docs/recovery.md) when given, and returns the `subscription_succeeded` message (which
    /// carries the history's head position when the channel is recorded). Frames that come
    /// before it are skipped.
    pub async fn subscribe_with(
        &mut self,
        channel: &str,
        clarion: Option<&Value>,
    ) -> Result<Value, String> {
        let mut msg =
            serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel}});
        if let Some(c) = clarion {
            msg["data"]["clarion"] = c.clone();
        }
        self.send_text(&msg.to_string()).await?;
        loop {
            let m = self.next_json().await?;
            if ws_client::subscribed(&m, channel)? {
                return Ok(m);
            }
        }
    }

    /// Sends one text message.
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.send(OP_TEXT, text.as_bytes()).await
    }

    /// The next text message, parsed (for the handshake phase; allocates).
    pub async fn next_json(&mut self) -> Result<Value, String> {
        let mut found = None;
        self.read_messages(|text| {
            found = Some(serde_json::from_slice(text).map_err(|e| e.to_string()));
            false
        })
        .await?;
        found.unwrap_or_else(|| Err("connection ended".into()))
    }

    /// Calls `on_text` with every text message until it returns false, the server closes the
    /// connection or a read fails; answers pings.
    pub async fn read_messages(
        &mut self,
        mut on_text: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), String> {
        loop {
            while let Some(frame) =
                parse_frame(self.buf.get(self.start..self.end).unwrap_or_default())?
            {
                let at = self.start;
                self.start += frame.payload.1;
                let payload = self
                    .buf
                    .get_mut(at + frame.payload.0..at + frame.payload.1)
                    .ok_or("frame outside the buffer")?;
                if let Some(m) = frame.mask {
                    for (i, b) in payload.iter_mut().enumerate() {
                        *b ^= m[i % 4];
                    }
                }
                match frame.opcode {
                    OP_TEXT | OP_BINARY if frame.fin && self.partial.is_empty() => {
                        if !on_text(payload) {
                            return Ok(());
                        }
                    }
                    OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                        self.partial.extend_from_slice(payload);
                        if frame.fin {
                            let whole = std::mem::take(&mut self.partial);
                            if !on_text(&whole) {
                                return Ok(());
                            }
                        }
                    }
                    OP_PING => {
                        let data = payload.to_vec();
                        self.send(OP_PONG, &data).await?;
                    }
                    OP_PONG => {}
                    OP_CLOSE => {
                        let code = payload
                            .get(..2)
                            .and_then(|c| <[u8; 2]>::try_from(c).ok())
                            .map(|c| u16::from_be_bytes(c).to_string());
                        return Err(format!(
                            "closed by the server ({})",
                            code.as_deref().unwrap_or("no code")
                        ));
                    }
                    op => return Err(format!("unknown opcode {op}")),
                }
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes, first moving what is left to the front (and growing the buffer when a
    /// single frame is larger than it).
    async fn fill(&mut self) -> Result<(), String> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let bigger = self.buf.len() * 2;
            self.buf.resize(bigger, 0);
        }
        let free = self.buf.get_mut(self.end..).unwrap_or_default();
        match self.stream.read(free).await {
            Ok(0) => Err("connection ended".into()),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sends one masked frame (clients must mask).
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        let mask = rand::random::<[u8; 4]>();
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Standard base64 with padding (for the 16-byte handshake key).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_extended_and_incomplete_frames() {
        let mut f = vec![0x81, 5];
        f.extend_from_slice(b"hello");
        assert_eq!(
            parse_frame(&f),
            Ok(Some(Frame {
                fin: true,
                opcode: OP_TEXT,
                payload: (2, 7),
                mask: None
            }))
        );
        assert_eq!(parse_frame(&f[..6]), Ok(None));
        assert_eq!(parse_frame(&f[..1]), Ok(None));
        let mut long = vec![0x01, 126, 0x01, 0x00];
        long.extend(std::iter::repeat_n(b'x', 256));
        let frame = parse_frame(&long).ok().flatten();
        assert_eq!(frame.map(|f| (f.fin, f.payload)), Some((false, (4, 260))));
        assert_eq!(parse_frame(&long[..3]), Ok(None));
        assert!(parse_frame(&[0xC1, 0]).is_err(), "reserved bit");
    }

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
