//! A TLS server stream over rustls's unbuffered API that holds no buffer while its connection
//! is idle.
//!
//! Why not tokio-rustls: its `ServerConnection` keeps a 4 KiB receive buffer for the life of
//! the connection (rustls sizes it before every read, even one that finds nothing), so an idle
//! `wss://` connection cost 11.9 KB against 4.5 KB for `ws://` (docs/performance.md, "Issue 19").
//! Here the three buffers — TLS bytes received but not yet a whole record, plaintext not yet
//! read, TLS bytes not yet written — belong to this stream, and each is freed the moment it is
//! empty, so an idle connection holds only rustls's keys and state.
//!
//! rustls does the TLS; this file only moves bytes between the socket, rustls's state machine
//! and the caller, in the order rustls asks for.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket at a time, into the stack (a TLS record is at most ~16.7 KB).
const READ_CHUNK: usize = 8192;
/// Encrypted bytes waiting for the socket beyond which a write waits for them to drain.
const WRITE_LIMIT: usize = 64 * 1024;
/// Plaintext taken per write call.
const WRITE_CHUNK: usize = 64 * 1024;
/// TLS adds at most this much to each record (TLS 1.2 GCM: 5 header + 8 nonce + 16 tag).
const RECORD_OVERHEAD: usize = 32;
/// rustls's largest plaintext record.
const MAX_RECORD: usize = 16384;

/// A server-side TLS stream, after its handshake ([`accept`]).
pub struct TlsStream<IO> {
    io: IO,
    conn: UnbufferedServerConnection,
    /// Received TLS bytes not yet consumed by rustls (at most a partial record between reads).
    incoming: Vec<u8>,
    /// Decrypted bytes not yet read, from `plain_read` on.
    plain: Vec<u8>,
    plain_read: usize,
    /// Encrypted bytes not yet written to the socket, from `out_written` on.
    outgoing: Vec<u8>,
    out_written: usize,
    /// The peer closed (close_notify, or the TCP connection): reads return end of stream.
    read_closed: bool,
    /// Our close_notify is queued: no more writes.
    write_closed: bool,
    /// rustls refused the peer's bytes: the connection is over, rustls is not called again (it
    /// would report, and send an alert for, the same bad bytes once more).
    failed: bool,
}

/// What the caller wants from one pass over rustls's states.
#[derive(Clone, Copy)]
enum Want<'a> {
    /// Decrypt what has arrived and send what rustls has to say.
    Read,
    /// As `Read`, then encrypt this.
    Write(&'a [u8]),
    /// As `Read`, then encrypt a close_notify alert.
    CloseNotify,
}

/// Where a pass stopped.
enum Next {
    /// rustls needs more bytes from the peer to go on.
    Input,
    /// The write or close_notify was encrypted into `outgoing`.
    Done,
    /// The peer has closed its side.
    Closed,
}

/// Runs the TLS handshake on `io`; the stream is returned once it can carry application data.
pub async fn accept<IO>(config: Arc<ServerConfig>, io: IO) -> io::Result<TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    let mut stream = TlsStream {
        io,
        conn,
        incoming: Vec::new(),
        plain: Vec::new(),
        plain_read: 0,
        outgoing: Vec::new(),
        out_written: 0,
        read_closed: false,
        write_closed: false,
        failed: false,
    };
    std::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
    Ok(stream)
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Appends what `encode` writes to `out`, growing `out` to the size rustls asks for. `room` is
/// the first guess; rustls leaves the buffer untouched when it is too small.
fn append<E>(
    out: &mut Vec<u8>,
    mut room: usize,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needs: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let start = out.len();
    loop {
        out.resize(start + room, 0);
        match encode(out.get_mut(start..).unwrap_or_default()) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => match needs(&e) {
                Some(size) if size > room => room = size,
                _ => {
                    out.truncate(start);
                    return Err(e);
                }
            },
        }
    }
}

fn encode_needs(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

fn encrypt_needs(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

fn encrypt_error(e: EncryptError) -> io::Error {
    io::Error::other(format!("TLS: {e}"))
}

impl<IO> TlsStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// Handles rustls's states until it needs input from the peer, or `want` is done. Handshake
    /// messages, alerts and key updates rustls produces on the way are queued in `outgoing`;
    /// application data it decrypts goes to `plain`.
    fn drive(&mut self, want: Want<'_>) -> io::Result<Next> {
        if self.failed {
            return Err(io::Error::other("TLS: the connection failed"));
        }
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut self.incoming);
            let step: io::Result<Option<Next>> = match state {
                Err(e) => Err(tls_error(e)),
                Ok(ConnectionState::ReadTraffic(mut records)) => {
                    let mut failed = None;
                    while let Some(record) = records.next_record() {
                        match record {
                            Ok(r) => {
                                discard += r.discard;
                                self.plain.extend_from_slice(r.payload);
                            }
                            Err(e) => {
                                failed = Some(tls_error(e));
                                break;
                            }
                        }
                    }
                    failed.map_or(Ok(None), Err)
                }
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    append(&mut self.outgoing, 512, |b| data.encode(b), encode_needs)
                        .map(|()| None)
                        .map_err(|e| io::Error::other(format!("TLS: {e}")))
                }
                // What was encoded goes out with the next send, in order, before anything
                // encrypted after it.
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    t.done();
                    Ok(None)
                }
                Ok(ConnectionState::BlockedHandshake) => Ok(Some(Next::Input)),
                Ok(ConnectionState::WriteTraffic(mut w)) => match want {
                    Want::Read => Ok(Some(Next::Input)),
                    Want::Write(data) => {
                        let room = data.len() + RECORD_OVERHEAD * (data.len() / MAX_RECORD + 1);
                        append(
                            &mut self.outgoing,
                            room,
                            |b| w.encrypt(data, b),
                            encrypt_needs,
                        )
                        .map(|()| Some(Next::Done))
                        .map_err(encrypt_error)
                    }
                    Want::CloseNotify => append(
                        &mut self.outgoing,
                        RECORD_OVERHEAD,
                        |b| w.queue_close_notify(b),
                        encrypt_needs,
                    )
                    .map(|()| Some(Next::Done))
                    .map_err(encrypt_error),
                },
                Ok(ConnectionState::PeerClosed) => {
                    self.read_closed = true;
                    Ok(matches!(want, Want::Read).then_some(Next::Closed))
                }
                Ok(ConnectionState::Closed) => {
                    self.read_closed = true;
                    Ok(Some(Next::Closed))
                }
                // Early data is not enabled in the server's configuration; anything else is a
                // state this rustls version does not have yet.
                Ok(_) => Err(io::Error::other("TLS: unexpected connection state")),
            };
            self.incoming.drain(..discard.min(self.incoming.len()));
            match step {
                Ok(Some(next)) => return Ok(next),
                Ok(None) => {}
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
    }

    /// `drive(Want::Read)`; when the peer's bytes are refused, the alert rustls prepared for it
    /// is sent (as far as the socket takes it at once) before the error is returned.
    fn drive_or_alert(&mut self, cx: &mut Context<'_>) -> io::Result<Next> {
        self.drive(Want::Read).inspect_err(|_| {
            self.queue_alert();
            let _ = self.poll_send(cx);
        })
    }

    /// After an error, takes the alert rustls queued for the peer: the next call hands out
    /// queued messages before it looks at the input again, and only that first state is used.
    fn queue_alert(&mut self) {
        let status = self.conn.process_tls_records(&mut self.incoming);
        if let Ok(ConnectionState::EncodeTlsData(mut alert)) = status.state {
            let _ = append(&mut self.outgoing, 64, |b| alert.encode(b), encode_needs);
        }
    }

    /// Writes `outgoing` to the socket; frees it once all of it is out.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_written < self.outgoing.len() {
            let pending = self.outgoing.get(self.out_written..).unwrap_or_default();
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_written += n;
        }
        if self.outgoing.capacity() > 0 {
            self.outgoing = Vec::new();
        }
        self.out_written = 0;
        Poll::Ready(Ok(()))
    }

    /// Reads what the socket has into `incoming`, through the stack, so no receive buffer
    /// outlives the read. Ready(0) is the end of the TCP stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut chunk);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        self.incoming.extend_from_slice(buf.filled());
        Poll::Ready(Ok(buf.filled().len()))
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Next::Closed = self.drive_or_alert(cx)? {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            // Each flight goes out before waiting for the peer's answer to it.
            ready!(self.poll_send(cx))?;
            if !self.conn.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            if ready!(self.poll_fill(cx))? == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during the TLS handshake",
                )));
            }
        }
    }

    /// Encrypts `data` into `outgoing`. Records that decrypting on the way produced are kept
    /// for the reader, which is woken for them.
    fn encrypt(&mut self, cx: &mut Context<'_>, data: &[u8]) -> io::Result<()> {
        if self.write_closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "TLS stream is shut down",
            ));
        }
        let unread = self.plain.len();
        match self.drive(Want::Write(data))? {
            Next::Done => {}
            Next::Input | Next::Closed => {
                return Err(io::Error::other("TLS: the connection cannot send"));
            }
        }
        if self.plain.len() > unread {
            cx.waker().wake_by_ref();
        }
        Ok(())
    }

    /// Makes room for more encrypted bytes: waits while `WRITE_LIMIT` of them are unsent.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.outgoing.len() - self.out_written >= WRITE_LIMIT {
            ready!(self.poll_send(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Sends what can go now; the rest waits for the next write or flush.
    fn try_send(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.poll_send(cx) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

impl<IO> AsyncRead for TlsStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.plain_read < this.plain.len() {
                let available = this.plain.get(this.plain_read..).unwrap_or_default();
                let n = available.len().min(buf.remaining());
                buf.put_slice(available.get(..n).unwrap_or_default());
                this.plain_read += n;
                if this.plain_read == this.plain.len() {
                    this.plain = Vec::new();
                    this.plain_read = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            let next = this.drive_or_alert(cx)?;
            this.try_send(cx)?;
            match next {
                Next::Closed => continue,
                Next::Input | Next::Done if this.plain_read < this.plain.len() => continue,
                Next::Input | Next::Done => {}
            }
            match this.poll_fill(cx)? {
                Poll::Ready(0) => this.read_closed = true,
                Poll::Ready(_) => {}
                Poll::Pending => {
                    if this.incoming.is_empty() && this.incoming.capacity() > 0 {
                        this.incoming = Vec::new();
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<IO> AsyncWrite for TlsStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_room(cx))?;
        let data = data.get(..WRITE_CHUNK).unwrap_or(data);
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.encrypt(cx, data)?;
        this.try_send(cx)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_room(cx))?;
        let mut taken = 0;
        for b in bufs.iter().filter(|b| !b.is_empty()) {
            if taken + b.len() > WRITE_CHUNK && taken > 0 {
                break;
            }
            let part = b.get(..WRITE_CHUNK).unwrap_or(b);
            this.encrypt(cx, part)?;
            taken += part.len();
            if part.len() < b.len() {
                break;
            }
        }
        this.try_send(cx)?;
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.write_closed = true;
            // A connection that cannot send its close_notify (failed, or never finished its
            // handshake) is still shut down.
            let _ = this.drive(Want::CloseNotify);
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl<IO> TlsStream<IO> {
    /// Bytes of buffer this stream holds (not rustls's own state): 0 when idle.
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.incoming.capacity() + self.plain.capacity() + self.outgoing.capacity()
    }
}

#[cfg(test)]
#[path = "tls_stream_tests.rs"]
mod tests;
