//! One large broadcast's sends, spread over the broadcaster's thread and helper threads.
//!
//! Why: with `direct_writes`, a send to an idle socket is a `sendmsg` made by the sender
//! (`direct.rs`). A broadcast to 10,000 idle sockets was then 10,000 system calls on one
//! thread, and the last subscriber waited for all of them: the 10k/1-channel p99 was 2.3× the
//! kernel floor's, whose two writers share each round. Here the list is cut into one part per
//! core; helper threads (one fewer than the cores) write the others while the broadcaster
//! writes its own.
//!
//! The broadcast is still over when `spread` returns, as when one thread did it all, so each
//! connection gets a channel's frames in order without anything more. A part no helper has
//! started by the time the broadcaster is through with its own is taken back and written by
//! the broadcaster: a busy or descheduled helper costs no more than doing it alone. Waiting
//! for a helper blocks the broadcaster's runtime thread (a Condvar, no await), as its own
//! writes do; it is bounded because every send is non-blocking (a full socket hands the frame
//! to the connection's task). Nothing here runs, and no thread is started, unless a broadcast
//! reaches `SPREAD_FROM` direct sends.

use std::borrow::Borrow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use super::direct::Tally;
use super::handle::ConnHandle;
use crate::protocol::frames::Frame;
use crate::sync::lock;

/// One send of a broadcast: the connection, and which of the broadcast's frames it gets (an
/// index into the list `spread` is given). An index, not a clone of the frame: the frame's
/// reference count is one cache line shared by every delivery, which both writing threads
/// would otherwise update once per send.
pub type Delivery = (ConnHandle, u32);

/// Below this many sends a broadcast stays on its own thread: handing a part over costs a
/// thread wake-up and the cache misses of another core, a few dozen writes' worth at most.
/// 64 (it was 256) so that every deferred broadcast (`namespace.rs`, more than 64
/// subscribers) is spread: the 100-subscriber channels' p99 with `direct_writes` was above
/// the setting-off figure when one thread wrote all 100 (docs/performance.md).
pub const SPREAD_FROM: usize = 64;
/// At most this many parts (cores used) per broadcast.
const MAX_PARTS: usize = 4;

/// Parts a helper wrote, since the process started (the tests' evidence that helpers work).
static HELPED: AtomicU64 = AtomicU64::new(0);

enum State {
    Waiting(Vec<Delivery>),
    Running,
    Done(usize),
}

/// A part handed to a helper: whoever takes it first writes it.
struct Part {
    /// The broadcast's frames, for the helper (one clone of each per part).
    frames: Vec<Frame>,
    state: Mutex<State>,
    done: Condvar,
}

impl Part {
    /// The sends, unless someone took them already.
    fn take(&self) -> Option<Vec<Delivery>> {
        let mut state = lock(&self.state);
        match std::mem::replace(&mut *state, State::Running) {
            State::Waiting(sends) => Some(sends),
            other => {
                *state = other;
                None
            }
        }
    }

    /// Waits for the helper that took the part; returns how many of its sends were queued.
    fn wait(&self) -> usize {
        let mut state = lock(&self.state);
        loop {
            if let State::Done(n) = *state {
                return n;
            }
            state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Marks a taken part done when dropped, even if a send panicked, so its broadcaster never
/// waits for ever.
struct Finish<'a> {
    part: &'a Part,
    sent: usize,
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        *lock(&self.part.state) = State::Done(self.sent);
        self.part.done.notify_one();
    }
}

/// Sends each delivery's frame to its connection; returns how many were queued or written.
/// A frame is cloned only for a connection whose task has to queue it, and the writes are
/// counted into the metrics once, at the end (`ConnHandle::send_shared`).
fn send_all<F: Borrow<Frame>>(sends: Vec<Delivery>, frames: &[F]) -> usize {
    let mut sent = 0;
    let mut tally = Tally::default();
    let mut sends = sends.into_iter().peekable();
    while let Some((handle, i)) = sends.next() {
        if let Some((next, _)) = sends.peek() {
            next.prefetch();
        }
        if let Some(frame) = frames.get(i as usize) {
            sent += usize::from(handle.send_shared(frame.borrow(), &mut tally));
        }
    }
    sent
}

/// The helpers' queues, started on first use: one fewer than the cores, up to `MAX_PARTS - 1`.
fn helpers() -> &'static [mpsc::Sender<Arc<Part>>] {
    static HELPERS: OnceLock<Vec<mpsc::Sender<Arc<Part>>>> = OnceLock::new();
    HELPERS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (1..cores.min(MAX_PARTS))
            .filter_map(|i| {
                let (tx, rx) = mpsc::channel::<Arc<Part>>();
                std::thread::Builder::new()
                    .name(format!("clarion-fan-{i}"))
                    .spawn(move || {
                        for part in rx {
                            if let Some(sends) = part.take() {
                                let mut finish = Finish {
                                    part: &part,
                                    sent: 0,
                                };
                                finish.sent = send_all(sends, &part.frames);
                                HELPED.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                    .ok()
                    .map(|_| tx)
            })
            .collect()
    })
}

/// Sends every delivery (`frames` holds the frames its indices name), spreading a large list
/// over the helpers, and returns once all are done: how many were queued or written.
pub fn spread(mut mine: Vec<Delivery>, frames: &[&Frame]) -> usize {
    let lanes = if mine.len() >= SPREAD_FROM {
        helpers()
    } else {
        &[]
    };
    let size = mine.len().div_ceil(lanes.len() + 1);
    let mut handed = Vec::with_capacity(lanes.len());
    for lane in lanes {
        if mine.len() <= size {
            break;
        }
        let part = Arc::new(Part {
            frames: frames.iter().map(|f| (*f).clone()).collect(),
            state: Mutex::new(State::Waiting(mine.split_off(mine.len() - size))),
            done: Condvar::new(),
        });
        match lane.send(part.clone()) {
            Ok(()) => handed.push(part),
            // The helper is gone (its thread ended): its share stays here.
            Err(_) => mine.extend(part.take().unwrap_or_default()),
        }
    }
    let mut sent = send_all(mine, frames);
    for part in handed {
        sent += match part.take() {
            Some(sends) => send_all(sends, frames),
            None => part.wait(),
        };
    }
    sent
}

#[cfg(test)]
#[path = "spread_tests.rs"]
mod tests;
