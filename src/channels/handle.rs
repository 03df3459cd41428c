//! The part of a connection that other tasks may touch: its bounded outbound queue and its
//! close switch.
//!
//! Broadcasters never wait on a connection: `send` never blocks, and a full queue means the
//! client is not reading, so it is closed with 4100 rather than allowed to grow memory.
//!
//! Why not tokio's `mpsc` plus a `Notify` (as before): a broadcast to 10,000 idle connections
//! touches each connection's queue once, and on this path the cost is cache misses, not
//! instructions. The channel's semaphore, block list and receiver waker, and the `Notify`'s
//! waiter lock that the connection loop took on every wake-up, were six of the largest user-space
//! entries in the profile of that case. Here one small lock guards the frames and the close
//! request, and one waker serves both; the queue's memory is allocated on first use (tokio's
//! channel allocates a 32-slot block per connection up front).
//!
//! With `direct_writes` on, on a plain TCP connection whose task is idle (waiting in
//! `poll_frame` with nothing unwritten) and that was not written to in the last `HOT_MS`, `send`
//! writes the frame to the socket itself under this lock (`direct.rs`), and the task is not
//! woken at all; a large broadcast spreads those writes over the cores (`spread.rs`). The rules
//! that keep one writer at a time and frames in order live here: the task marks itself idle
//! only when its queue is empty, takes the socket back (`busy`) before writing anything that
//! did not come from `poll_frame`, and gets first whatever part of a frame the socket refused.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use super::direct::{coarse_ms, Socket, Tally, Wrote};
use crate::protocol::codes::Fatal;
use crate::protocol::frames::Frame;
use crate::protocol::socket_id::SocketId;

/// A queue that grew in a burst gives its memory back once drained, down to this many slots.
const KEEP_SLOTS: usize = 16;
/// A connection written to less than this long ago (milliseconds on `direct::coarse_ms`) is
/// left to its task even when idle: a connection busy with frames from several channels is
/// batched by its task into fewer writes. A busy channel never has its sends written by the
/// sender at all (`send_queued`, `pace.rs`).
const HOT_MS: u32 = 5;

/// Handle to one live connection. Held by value (the connection map, every subscription, a
/// broadcast's deferred sends): a clone is one reference count on the shared queue, and a
/// send reaches the queue through one pointer, not through a block of its own first — on a
/// 10,000-subscriber broadcast that was one cache miss per delivery more.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub socket_id: SocketId,
    shared: Arc<Shared>,
}

/// The connection task's end of the queue.
#[derive(Debug)]
pub struct Receiver {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<Queue>,
    /// Set with the close request, so the connection loop can check it without the lock.
    closing: AtomicBool,
    /// The connection task, woken for a first frame and for a close request.
    waker: AtomicWaker,
}

/// Kept to 64 bytes, so the connection's whole shared part stays in the allocator's 128-byte
/// class with `direct_writes` on or off (a test holds it there): what senders need to write
/// lives here inline, not behind a box of its own per connection.
#[derive(Debug)]
struct Queue {
    frames: VecDeque<Frame>,
    /// The plain TCP socket, for senders to write to while `idle` (`direct.rs`): only plain
    /// TCP connections with `direct_writes` have it.
    socket: Option<Socket>,
    /// How many bytes of the first frame a sender already wrote (0: none): the task writes
    /// the rest before anything else.
    rest: u32,
    capacity: u32,
    /// When (`coarse_ms`) the task last went idle after doing something, or a sender last
    /// wrote (`HOT_MS`).
    last_active: u32,
    close: Option<Fatal>,
    receiver_gone: bool,
    /// The task has written everything it was given and waits: a sender may write a frame to
    /// the socket itself, holding this lock. Only with `socket`; never true while frames wait.
    idle: bool,
}

/// What the connection task is to write next.
#[derive(Debug)]
pub enum Outbound {
    Frame(Frame),
    /// The rest of a frame from this byte of its framed form (header included) on.
    Rest(Frame, usize),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        crate::sync::lock(&self.state)
    }
}

impl ConnHandle {
    /// Creates a handle and the receiving end of its outbound queue.
    pub fn new(socket_id: SocketId, queue: usize) -> (ConnHandle, Receiver) {
        let shared = Arc::new(Shared {
            state: Mutex::new(Queue {
                frames: VecDeque::new(),
                socket: None,
                rest: 0,
                capacity: u32::try_from(queue.max(1)).unwrap_or(u32::MAX),
                last_active: 0,
                close: None,
                receiver_gone: false,
                idle: false,
            }),
            closing: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        (
            ConnHandle {
                socket_id,
                shared: shared.clone(),
            },
            Receiver { shared },
        )
    }

    /// Queues a frame, or writes it to the socket when the connection may take that
    /// (`direct_writes`, idle, not written to within `HOT_MS`). Returns false when the
    /// connection is gone, is closing, or was just closed as a slow consumer.
    pub fn send(&self, frame: Frame) -> bool {
        self.push(Cow::Owned(frame), true, &mut Tally::now())
    }

    /// `send` for a frame that many connections share (a broadcast's), counting what it
    /// writes in the broadcast's `tally`. The frame is cloned only if it has to wait in the
    /// queue: a frame written straight to the socket is not, so a broadcast's writes do not
    /// all count references on the one shared frame — an atomic on a single cache line that
    /// both writing threads would pass back and forth.
    pub fn send_shared(&self, frame: &Frame, tally: &mut Tally) -> bool {
        self.push(Cow::Borrowed(frame), true, tally)
    }

    /// Queues a frame for the connection's task, never writing it here: for a busy channel's
    /// broadcast (`pace.rs`). Returns what `send` does.
    pub fn send_queued(&self, frame: &Frame) -> bool {
        self.push(Cow::Borrowed(frame), false, &mut Tally::now())
    }

    fn push(&self, frame: Cow<'_, Frame>, may_write: bool, tally: &mut Tally) -> bool {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        if state.receiver_gone || state.close.is_some() {
            return false;
        }
        if state.idle {
            // The task cannot be writing: put the frame on the socket here, unless the
            // connection or the channel is busy enough that the task does better.
            state.idle = false;
            // The time, when the sender may write: its channel is quiet, the connection cold.
            let cold = may_write
                .then(coarse_ms)
                .filter(|now| now.wrapping_sub(state.last_active) >= HOT_MS);
            if let (Some(now), Some(socket)) = (cold, &state.socket) {
                // The queue is empty while idle: a part-written frame goes first.
                match socket.write(frame.as_bytes(), tally) {
                    Wrote::All => {
                        state.idle = true;
                        state.last_active = now;
                        return true;
                    }
                    Wrote::Part(n) => {
                        state.frames.push_back(frame.into_owned());
                        state.rest = n;
                    }
                    Wrote::Nothing => state.frames.push_back(frame.into_owned()),
                }
                drop(guard);
                self.shared.waker.wake();
                return true;
            }
        }
        if state.frames.len() >= state.capacity as usize {
            drop(guard);
            self.close(Fatal::SlowConsumer);
            return false;
        }
        let was_empty = state.frames.is_empty();
        state.frames.push_back(frame.into_owned());
        drop(guard);
        // A non-empty queue means the task was already woken and will drain it all.
        if was_empty {
            self.shared.waker.wake();
        }
        true
    }

    /// Asks the connection's task to close for `why`; the first request wins.
    pub fn close(&self, why: Fatal) {
        let mut state = self.shared.lock();
        if state.close.is_none() {
            state.close = Some(why);
            drop(state);
            self.shared.closing.store(true, Ordering::Release);
            self.shared.waker.wake();
        }
    }

    /// The close request, if any.
    pub fn pending_close(&self) -> Option<Fatal> {
        self.shared.lock().close
    }

    /// Lets senders write to this plain TCP socket while the connection is idle. The socket
    /// is given up when the `Receiver` is dropped, which the connection task does before it
    /// drops the stream that owns the file descriptor.
    pub fn allow_direct(&self, socket: Socket) {
        self.shared.lock().socket = Some(socket);
    }

    /// Whether senders may write to this connection's socket (`allow_direct` was called and
    /// the task has not ended).
    pub fn writes_direct(&self) -> bool {
        self.shared.lock().socket.is_some()
    }

    /// Starts loading this connection's queue into the cache, for a sender that will `send`
    /// to it next: a broadcast's writes go to one connection after another, each queue a
    /// cache miss of its own, and a hint given one delivery ahead overlaps that miss with the
    /// previous delivery's system call. Only a hint: no effect on other architectures.
    pub fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch never faults and reads nothing the program sees; the pointer is
        // the live queue this handle keeps alive.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(Arc::as_ptr(&self.shared).cast());
        }
    }

    /// Frames waiting in the queue now. For the metrics, which add these up at scrape time:
    /// a shared running count would be one more atomic touched by every frame of a broadcast.
    pub fn queued(&self) -> usize {
        self.shared.lock().frames.len()
    }
}

impl Receiver {
    /// Ready with the close request once there is one. Checks a flag only: the waker that
    /// `poll_frame` registered is woken for close requests too.
    pub fn poll_close(&self) -> Poll<Fatal> {
        if !self.shared.closing.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        match self.shared.lock().close {
            Some(c) => Poll::Ready(c),
            None => Poll::Pending,
        }
    }

    /// Like `poll_close`, but registers the task to be woken by a close request (for waits
    /// during which `poll_frame` is not polled, such as a write to a full socket).
    pub fn poll_close_registered(&self, cx: &mut Context<'_>) -> Poll<Fatal> {
        self.shared.waker.register(cx.waker());
        self.poll_close()
    }

    /// What to write next, or Pending (the task is woken when a frame arrives or a close is
    /// requested). Pending also marks the connection idle, so senders may write to the socket
    /// themselves: the task polls this only when it has nothing unwritten, and calls `busy`
    /// before it writes anything else.
    pub fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Outbound> {
        self.shared.waker.register(cx.waker());
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        if state.rest > 0 {
            let done = std::mem::take(&mut state.rest) as usize;
            if let Some(frame) = state.frames.pop_front() {
                return Poll::Ready(Outbound::Rest(frame, done));
            }
        }
        match Self::pop(state) {
            Some(f) => Poll::Ready(Outbound::Frame(f)),
            None => {
                if state.socket.is_some() && state.close.is_none() && !state.idle {
                    state.idle = true;
                    state.last_active = coarse_ms();
                }
                Poll::Pending
            }
        }
    }

    /// Takes the socket back from senders before the task writes to it outside `poll_frame`'s
    /// frames (a pong, a close).
    pub fn busy(&self) {
        self.shared.lock().idle = false;
    }

    /// The next queued frame, without waiting. None while a part-written frame waits: only
    /// `poll_frame` hands that out, as `Outbound::Rest`.
    pub fn try_recv(&self) -> Option<Frame> {
        let mut state = self.shared.lock();
        if state.rest > 0 {
            return None;
        }
        Self::pop(&mut state)
    }

    fn pop(state: &mut Queue) -> Option<Frame> {
        let frame = state.frames.pop_front();
        if frame.is_none() && state.frames.capacity() > KEEP_SLOTS {
            state.frames.shrink_to(KEEP_SLOTS);
        }
        frame
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_gone = true;
        state.frames = VecDeque::new();
        state.rest = 0;
        // No sender may touch the file descriptor once the stream that owns it can close it.
        state.socket = None;
        state.idle = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn frame(text: &str) -> Frame {
        Frame::from(text.to_string())
    }

    #[tokio::test]
    async fn frames_arrive_in_order_and_wake_the_receiver() {
        let (h, rx) = ConnHandle::new(SocketId(1, 1), 10);
        let h = Arc::new(h);
        let sender = h.clone();
        let task = tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..3 {
                if let Outbound::Frame(f) = poll_fn(|cx| rx.poll_frame(cx)).await {
                    got.push(f.to_string());
                }
            }
            got
        });
        tokio::task::yield_now().await;
        for t in ["a", "b", "c"] {
            assert!(sender.send(frame(t)));
            tokio::task::yield_now().await;
        }
        assert_eq!(
            task.await.ok(),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
    }

    #[test]
    fn a_full_queue_closes_with_4100_and_refuses_more() {
        let (h, rx) = ConnHandle::new(SocketId(1, 1), 2);
        assert!(h.send(frame("1")));
        assert!(h.send(frame("2")));
        assert!(!h.send(frame("3")), "over the bound");
        assert_eq!(h.pending_close(), Some(Fatal::SlowConsumer));
        assert_eq!(rx.poll_close(), Poll::Ready(Fatal::SlowConsumer));
        assert!(!h.send(frame("4")), "closing");
        assert_eq!(rx.try_recv().map(|f| f.to_string()), Some("1".into()));
    }

    #[tokio::test]
    async fn a_close_request_wakes_a_waiting_receiver_and_the_first_wins() {
        let (h, rx) = ConnHandle::new(SocketId(1, 1), 10);
        let h = Arc::new(h);
        let closer = h.clone();
        let task = tokio::spawn(async move { poll_fn(|cx| rx.poll_close_registered(cx)).await });
        tokio::task::yield_now().await;
        closer.close(Fatal::ShuttingDown);
        closer.close(Fatal::TerminatedByApp);
        assert_eq!(task.await.ok(), Some(Fatal::ShuttingDown));
    }

    #[test]
    fn sends_after_the_receiver_is_gone_fail_and_queued_frames_are_freed() {
        let (h, rx) = ConnHandle::new(SocketId(1, 1), 10);
        let f = frame("kept?");
        assert!(h.send(f.clone()));
        drop(rx);
        assert!(!h.send(frame("late")));
        // Only our clone is left: the queue let go of its copy.
        assert_eq!(bytes_refs(f), 1);
    }

    /// Reference count of a frame's shared bytes, observed by trying to take them back.
    fn bytes_refs(f: Frame) -> usize {
        let b: bytes::Bytes = f.into();
        if b.is_unique() {
            1
        } else {
            2
        }
    }

    #[test]
    fn a_connections_shared_part_fits_one_128_byte_heap_block() {
        // The `Arc`'s block holds two counts and `Shared`; glibc adds 8 bytes of its own and
        // rounds to 16, so up to 120 bytes stay in the 128-byte class. An idle connection's
        // memory is a measured figure (docs/performance.md): growing this grows it.
        assert!(std::mem::size_of::<Queue>() <= 64);
        assert!(2 * std::mem::size_of::<usize>() + std::mem::size_of::<Shared>() <= 120);
    }

    #[test]
    fn a_drained_queue_gives_back_burst_memory() {
        let (h, rx) = ConnHandle::new(SocketId(1, 1), 1000);
        for i in 0..500 {
            assert!(h.send(frame(&i.to_string())));
        }
        while rx.try_recv().is_some() {}
        assert!(h.shared.lock().frames.capacity() <= KEEP_SLOTS);
    }
}

#[cfg(test)]
#[path = "direct_tests.rs"]
mod direct_tests;
