//! Writing a frame straight to an idle connection's socket, from the task that broadcasts it.
//!
//! Why: on a large channel, most of a delivery's cost outside the kernel's own write was the
//! connection task — waking it, scheduling it, polling its socket and queue, framing in
//! tungstenite (docs/performance.md, "The kernel floor"). When the task has nothing unwritten
//! and is only waiting, the sender can put the frame on the socket itself, one `sendmsg` of a
//! header on the stack and the payload where it already is, and the task never wakes.
//!
//! `sendmsg`, not `writev`: the same two buffers, but a socket call goes straight to TCP, where
//! `writev` first passes the file layer (the file-position check, the write-notification
//! hooks), which touches each socket's file and inode once more; in a profile of a
//! 10,000-subscriber broadcast that layer was a tenth of the server's CPU (docs/performance.md).
//!
//! Only plain TCP (a TLS record needs the connection's keys), and only under the queue's lock
//! while the task is idle (`handle.rs` keeps that rule), so frames stay in order and no two
//! writers ever share the socket. What the kernel does not take at once goes to the task.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Counts frames senders wrote themselves (how many, and their payload bytes) into the
/// metrics the connection task counts its own writes in.
///
/// One per app, shared by its connections (`Namespace::count_sent`), behind a thin `Arc`: a
/// closure per connection was a heap block of its own, and a fat pointer would not fit the
/// queue's cache-line budget (`handle.rs`).
pub struct CountSent(Box<dyn Fn(u64, u64) + Send + Sync>);

impl CountSent {
    /// `count(messages, bytes)` adds to the app's metrics.
    pub fn new(count: impl Fn(u64, u64) + Send + Sync + 'static) -> CountSent {
        CountSent(Box::new(count))
    }
}

/// The frames senders wrote themselves over a run of sends (a broadcast's part), counted into
/// the app's metrics once, when the tally is dropped or written to another app's counter.
///
/// Why: the metrics are one pair of counters per app, so counting each write was two atomic
/// additions on lines that every writing thread shares; during a large broadcast two threads
/// write at once and those lines went back and forth between the cores on every delivery.
#[derive(Default)]
pub struct Tally {
    into: Option<Arc<CountSent>>,
    messages: u64,
    bytes: u64,
    /// Count each write at once instead (`Tally::now`).
    now: bool,
}

impl Tally {
    /// A tally for one send: it counts the write at once, without keeping a reference to the
    /// app's counter (which would be two more shared atomics per send).
    pub fn now() -> Tally {
        Tally {
            into: None,
            messages: 0,
            bytes: 0,
            now: true,
        }
    }

    fn add(&mut self, count: &Arc<CountSent>, len: usize) {
        if self.now {
            (count.0)(1, len as u64);
            return;
        }
        if !self.into.as_ref().is_some_and(|c| Arc::ptr_eq(c, count)) {
            self.flush();
            self.into = Some(count.clone());
        }
        self.messages += 1;
        self.bytes += len as u64;
    }

    fn flush(&mut self) {
        if let Some(count) = &self.into {
            if self.messages > 0 {
                (count.0)(self.messages, self.bytes);
            }
        }
        self.messages = 0;
        self.bytes = 0;
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.flush();
    }
}

impl std::fmt::Debug for CountSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountSent")
    }
}

/// A connection's socket as senders may use it: 16 bytes, kept inline in the queue.
pub struct Socket {
    count: Arc<CountSent>,
    fd: RawFd,
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
    /// This many bytes of the framed message (header included); the rest is the task's. A
    /// `u32`, so the queue keeps it in its padding: one write offers at most `MAX_WRITE` bytes.
    Part(u32),
    /// Nothing: the socket's buffer is full or the socket failed; the task finds out which.
    Nothing,
}

impl Socket {
    /// A socket for senders. The caller guarantees `fd` stays open for as long as the
    /// `Socket` may be used (`handle.rs` drops it before the connection's stream).
    pub fn new(fd: RawFd, count: Arc<CountSent>) -> Socket {
        Socket { count, fd }
    }

    /// Writes `payload` as one server-to-client text frame; a whole frame is counted in
    /// `tally`.
    pub fn write(&self, payload: &[u8], tally: &mut Tally) -> Wrote {
        let total = header(payload.len()).1 + payload.len();
        match write_frame(self.fd, payload, 0) {
            Ok(n) if n == total => {
                tally.add(&self.count, payload.len());
                Wrote::All
            }
            Ok(0) | Err(_) => Wrote::Nothing,
            // At most `MAX_WRITE` was offered, so the fallback is never taken.
            Ok(n) => Wrote::Part(u32::try_from(n).unwrap_or(MAX_WRITE)),
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

/// The most one write offers the kernel (Linux takes at most about 2 GiB per call anyway), so
/// what went out always fits a `u32`.
const MAX_WRITE: u32 = i32::MAX as u32;

/// One non-blocking `sendmsg` of the framed message from byte `skip` on, at most `MAX_WRITE`
/// bytes of it.
fn write_frame(fd: RawFd, payload: &[u8], skip: usize) -> io::Result<usize> {
    let (head, used) = header(payload.len());
    let (h, p) = framed_from(head.get(..used).unwrap_or_default(), payload, skip);
    let p = p
        .get(..(MAX_WRITE as usize - h.len()).min(p.len()))
        .unwrap_or_default();
    let mut iov = [
        libc::iovec {
            iov_base: h.as_ptr() as *mut libc::c_void,
            iov_len: h.len(),
        },
        libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        },
    ];
    // SAFETY: an all-zero msghdr is valid (no address, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = 2;
    // SAFETY: both iovecs point into live slices of the given lengths, which sendmsg only
    // reads; `fd` is an open TCP socket (the caller's guarantee, see `Socket::new`).
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
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
