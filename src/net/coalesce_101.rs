//! Sends the `101 Switching Protocols` response and the first WebSocket frame
//! (`pusher:connection_established`) in one write.
//!
//! hyper writes and flushes the 101 on its own, and only then hands the socket to the WebSocket
//! task, which writes `connection_established` right after: two segments, two wake-ups and two
//! reads at the client, for two messages the client always needs together. This wrapper holds
//! back a complete 101 response head (the one flush hyper makes for it is answered at once) and
//! writes it together with whatever is written next, with one `writev`. Every other response,
//! and everything after the first write that follows a 101, passes straight through.
//!
//! Held bytes are never lost: a flush after hyper's one, a shutdown, or the next write sends
//! them. Every path after an upgrade writes something at once (`connection_established`, or an
//! error and a close frame), so the client does not wait for its 101.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const SWITCHING: &[u8] = b"HTTP/1.1 101 ";

enum Hold {
    /// Not (yet) upgraded: look at each write.
    Watching,
    /// A 101 response head waiting for the next write; `flushed` once hyper's flush of it was
    /// answered.
    Held { bytes: Vec<u8>, flushed: bool },
    /// Upgraded and sent: pass everything through.
    Done,
}

/// A stream that joins a 101 response to the write after it.
pub struct Coalesce101<S> {
    inner: S,
    hold: Hold,
}

impl<S> Coalesce101<S> {
    pub fn new(inner: S) -> Coalesce101<S> {
        Coalesce101 {
            inner,
            hold: Hold::Watching,
        }
    }
}

/// A whole 101 response head (it has no body, so it ends with the blank line).
fn is_switching_head(buf: &[u8]) -> bool {
    buf.starts_with(SWITCHING) && buf.ends_with(b"\r\n\r\n")
}

impl<S: AsyncWrite + Unpin> Coalesce101<S> {
    /// Writes held bytes followed by `bufs`; returns how many bytes of `bufs` were written
    /// (`None` when only held bytes went out, so the caller writes `bufs` itself).
    fn poll_write_after_held(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<Option<usize>>> {
        loop {
            let Hold::Held { bytes, .. } = &mut self.hold else {
                return Poll::Ready(Ok(None));
            };
            let mut slices = Vec::with_capacity(bufs.len() + 1);
            slices.push(IoSlice::new(bytes));
            slices.extend(bufs.iter().map(|b| IoSlice::new(b)));
            let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n < bytes.len() {
                bytes.drain(..n);
                continue;
            }
            let past = n - bytes.len();
            self.hold = Hold::Done;
            return Poll::Ready(Ok((past > 0).then_some(past)));
        }
    }

    /// Writes out held bytes on their own (a flush or shutdown with nothing else to send).
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_after_held(cx, &[]))?;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce101<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce101<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Every broadcast frame comes this way: after the upgrade, straight through.
        if let Hold::Done = self.hold {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match &this.hold {
            Hold::Done => {}
            Hold::Watching => {
                let mut filled = bufs.iter().filter(|b| !b.is_empty());
                if let (Some(only), None) = (filled.next(), filled.next()) {
                    if is_switching_head(only) {
                        this.hold = Hold::Held {
                            bytes: only.to_vec(),
                            flushed: false,
                        };
                        return Poll::Ready(Ok(only.len()));
                    }
                }
            }
            Hold::Held { .. } => {
                if let Some(n) = ready!(this.poll_write_after_held(cx, bufs))? {
                    return Poll::Ready(Ok(n));
                }
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // Joining needs vectored writes to be one syscall; without them (the default falls
        // back to the first slice) the held head and the next write still go out in order.
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Hold::Held { flushed, .. } = &mut this.hold {
            if !*flushed {
                // hyper's own flush of the 101: the bytes leave with the next write.
                *flushed = true;
                return Poll::Ready(Ok(()));
            }
            ready!(this.poll_release(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if matches!(this.hold, Hold::Held { .. }) {
            ready!(this.poll_release(cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const HEAD: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";

    /// Reads what arrives within a short while (one read per segment that arrived).
    async fn read_now(peer: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(std::time::Duration::from_millis(100), peer.read(&mut buf)).await
        {
            Ok(Ok(n)) => buf.get(..n).unwrap_or_default().to_vec(),
            _ => Vec::new(),
        }
    }

    async fn pair() -> io::Result<(tokio::net::TcpStream, tokio::net::TcpStream)> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let client = tokio::net::TcpStream::connect(l.local_addr()?).await?;
        let (server, _) = l.accept().await?;
        Ok((server, client))
    }

    #[tokio::test]
    async fn a_101_head_leaves_with_the_next_write() -> io::Result<()> {
        let (server, mut client) = pair().await?;
        let mut s = Coalesce101::new(server);
        s.write_all(HEAD).await?;
        s.flush().await?;
        assert_eq!(read_now(&mut client).await, b"", "held after hyper's flush");
        s.write_all(b"frame").await?;
        let mut want = HEAD.to_vec();
        want.extend_from_slice(b"frame");
        assert_eq!(read_now(&mut client).await, want);
        s.write_all(b"more").await?;
        assert_eq!(read_now(&mut client).await, b"more");
        Ok(())
    }

    #[tokio::test]
    async fn held_bytes_go_out_on_a_second_flush_or_a_shutdown() -> io::Result<()> {
        let (server, mut client) = pair().await?;
        let mut s = Coalesce101::new(server);
        s.write_all(HEAD).await?;
        s.flush().await?;
        s.flush().await?;
        assert_eq!(read_now(&mut client).await, HEAD);

        let (server, mut client) = pair().await?;
        let mut s = Coalesce101::new(server);
        s.write_all(HEAD).await?;
        s.flush().await?;
        s.shutdown().await?;
        let mut all = Vec::new();
        client.read_to_end(&mut all).await?;
        assert_eq!(all, HEAD);
        Ok(())
    }

    #[tokio::test]
    async fn other_responses_pass_straight_through() -> io::Result<()> {
        let (server, mut client) = pair().await?;
        let mut s = Coalesce101::new(server);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        s.write_all(ok).await?;
        s.flush().await?;
        assert_eq!(read_now(&mut client).await, ok);
        // A keep-alive connection may upgrade on a later request.
        s.write_all(HEAD).await?;
        s.flush().await?;
        s.write_all(b"x").await?;
        let mut want = HEAD.to_vec();
        want.push(b'x');
        assert_eq!(read_now(&mut client).await, want);
        Ok(())
    }
}
