//! Writing a frame straight to an idle connection's socket, from the task that broadcasts it.
//!
//! Why: on a large channel, most of a delivery's cost outside the kernel's own write was the
//! connection task — waking it, scheduling it, polling its socket and queue, framing in
//! tungstenite (docs/performance.md, "The kernel floor"). When the task has nothing unwritten
//! and is only waiting, the sender can put the frame on the socket itself, one `writev` of a
//! header on the stack and the payload where it already is, and the task never wakes.
//!
//! Only plain TCP (a TLS record needs the connection's keys), and only under the queue's lock
//! while the task is idle (`handle.rs` keeps that rule), so frames stay in order and no two
//! writers ever share the socket. What the kernel does not take at once goes to the task.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Counts a frame a sender wrote itself (its payload length): the connection task counts the
/// frames it writes into the same metrics.
pub type CountSent = Arc<dyn Fn(usize) + Send + Sync>;

/// A connection's socket as senders may use it.
pub struct Socket {
    fd: RawFd,
    count: CountSent,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").field("fd", &self.fd).finish()
    }
}

/// The socket's file descriptor, as the server's accept loop saw it, carried to the
/// WebSocket upgrade in the request's extensions. Absent on TLS connections.
#[derive(Clone, Copy, Debug)]
pub struct SocketFd(pub RawFd);

/// How much of a frame went out.
#[derive(Debug, PartialEq, Eq)]
pub enum Wrote {
    All,
    /// This many bytes of the framed message (header included); the rest is the task's.
    Part(usize),
    /// Nothing: the socket's buffer is full or the socket failed; the task finds out which.
    Nothing,
}

impl Socket {
    /// A socket for senders. The caller guarantees `fd` stays open for as long as the
    /// `Socket` may be used (`handle.rs` drops it before the connection's stream).
    pub fn new(fd: RawFd, count: CountSent) -> Socket {
        Socket { fd, count }
    }

    /// Writes `payload` as one server-to-client text frame.
    pub fn write(&self, payload: &[u8]) -> Wrote {
        let total = header(payload.len()).1 + payload.len();
        match write_frame(self.fd, payload, 0) {
            Ok(n) if n == total => {
                (self.count)(payload.len());
                Wrote::All
            }
            Ok(0) | Err(_) => Wrote::Nothing,
            Ok(n) => Wrote::Part(n),
        }
    }
}

/// The WebSocket header of an unmasked, final text frame of `len` payload bytes (RFC 6455
/// §5.2), and how many of its bytes are used.
pub fn header(len: usize) -> ([u8; 10], usize) {
    if len < 126 {
        ([0x81, len as u8, 0, 0, 0, 0, 0, 0, 0, 0], 2)
    } else if let Ok(short) = u16::try_from(len) {
        let [a, b] = short.to_be_bytes();
        ([0x81, 126, a, b, 0, 0, 0, 0, 0, 0], 4)
    } else {
        let [a, b, c, d, e, f, g, h] = (len as u64).to_be_bytes();
        ([0x81, 127, a, b, c, d, e, f, g, h], 10)
    }
}

/// The bytes of the framed message from `skip` on, as (header part, payload part).
pub fn framed_from<'a>(head: &'a [u8], payload: &'a [u8], skip: usize) -> (&'a [u8], &'a [u8]) {
    let h = head.get(skip..).unwrap_or_default();
    let p = payload
        .get(skip.saturating_sub(head.len())..)
        .unwrap_or_default();
    (h, p)
}

/// One non-blocking `writev` of the framed message from byte `skip` on.
fn write_frame(fd: RawFd, payload: &[u8], skip: usize) -> io::Result<usize> {
    let (head, used) = header(payload.len());
    let (h, p) = framed_from(head.get(..used).unwrap_or_default(), payload, skip);
    let iov = [
        libc::iovec {
            iov_base: h.as_ptr() as *mut libc::c_void,
            iov_len: h.len(),
        },
        libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        },
    ];
    // SAFETY: both iovecs point into live slices of the given lengths, which writev only
    // reads; `fd` is open (the caller's guarantee, see `Socket::new`) and non-blocking, as
    // tokio left it. SIGPIPE is ignored by the Rust runtime, so a closed peer is an EPIPE.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Milliseconds on the kernel's coarse monotonic clock (wrapping), for the rules that decide
/// whether a sender writes: a connection's `HOT_MS` (`handle.rs`) and a channel's pace
/// (`pace.rs`).
///
/// Why not `Instant::now()`: the clock is read once or twice per delivery (the task going
/// idle, the sender checking), where a full clock read and the 16-byte `Instant` it is stored
/// as were measurable; the coarse clock is a memory read in the vDSO, and its resolution (one
/// timer tick, 1–4 ms) is fine for thresholds of a few milliseconds.
pub fn coarse_ms() -> u32 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every Linux
    // since 2.6.32 and the call cannot fail with a valid pointer (on failure `t` stays zero).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut t) };
    let ms = (t.tv_sec as u64)
        .wrapping_mul(1000)
        .wrapping_add(t.tv_nsec as u64 / 1_000_000);
    ms as u32
}
