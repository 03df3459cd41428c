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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use crate::protocol::codes::Fatal;
use crate::protocol::frames::Frame;
use crate::protocol::socket_id::SocketId;

/// A queue that grew in a burst gives its memory back once drained, down to this many slots.
const KEEP_SLOTS: usize = 16;

/// Handle to one live connection.
#[derive(Debug)]
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

#[derive(Debug)]
struct Queue {
    frames: VecDeque<Frame>,
    capacity: usize,
    close: Option<Fatal>,
    receiver_gone: bool,
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
                capacity: queue.max(1),
                close: None,
                receiver_gone: false,
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

    /// Queues a frame. Returns false when the connection is gone, is closing, or was just
    /// closed as a slow consumer.
    pub fn send(&self, frame: Frame) -> bool {
        let mut state = self.shared.lock();
        if state.receiver_gone || state.close.is_some() {
            return false;
        }
        if state.frames.len() >= state.capacity {
            drop(state);
            self.close(Fatal::SlowConsumer);
            return false;
        }
        let was_empty = state.frames.is_empty();
        state.frames.push_back(frame);
        drop(state);
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

    /// The next queued frame, or Pending (the task is woken when one arrives or a close is
    /// requested).
    pub fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Frame> {
        self.shared.waker.register(cx.waker());
        match self.try_recv() {
            Some(f) => Poll::Ready(f),
            None => Poll::Pending,
        }
    }

    /// The next queued frame, without waiting.
    pub fn try_recv(&self) -> Option<Frame> {
        let mut state = self.shared.lock();
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
                got.push(poll_fn(|cx| rx.poll_frame(cx)).await.to_string());
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
    fn a_drained_queue_gives_back_burst_memory() {
        let (h, rx) = ConnHandle::new(SocketId(1, 1), 1000);
        for i in 0..500 {
            assert!(h.send(frame(&i.to_string())));
        }
        while rx.try_recv().is_some() {}
        assert!(h.shared.lock().frames.capacity() <= KEEP_SLOTS);
    }
}
