//! The part of a connection that other tasks may touch: its bounded outbound queue and its
//! close switch.
//!
//! Broadcasters never wait on a connection: `send` uses `try_send`, and a full queue means the
//! client is not reading, so it is closed with 4100 rather than allowed to grow memory.

use std::sync::Mutex;

use tokio::sync::{mpsc, Notify};

use crate::protocol::codes;
use crate::protocol::frames::Frame;
use crate::protocol::socket_id::SocketId;

/// Handle to one live connection.
#[derive(Debug)]
pub struct ConnHandle {
    pub socket_id: SocketId,
    tx: mpsc::Sender<Frame>,
    close_reason: Mutex<Option<(u16, String)>>,
    close_signal: Notify,
}

impl ConnHandle {
    /// Creates a handle and the receiving end of its outbound queue.
    pub fn new(socket_id: SocketId, queue: usize) -> (ConnHandle, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(queue.max(1));
        (
            ConnHandle {
                socket_id,
                tx,
                close_reason: Mutex::new(None),
                close_signal: Notify::new(),
            },
            rx,
        )
    }

    /// Queues a frame. Returns false when the connection is gone or was just closed as a slow
    /// consumer.
    pub fn send(&self, frame: Frame) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(
                    codes::OVER_CAPACITY,
                    "Over capacity: the client did not read its messages in time",
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the connection's task to close with `code`; the first request wins.
    pub fn close(&self, code: u16, reason: &str) {
        let mut slot = match self.close_reason.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if slot.is_none() {
            *slot = Some((code, reason.to_string()));
            self.close_signal.notify_one();
        }
    }

    /// Waits until someone calls `close`, and returns the code and reason.
    pub async fn closed(&self) -> (u16, String) {
        loop {
            if let Some(r) = self.pending_close() {
                return r;
            }
            self.close_signal.notified().await;
        }
    }

    /// The close request, if any.
    pub fn pending_close(&self) -> Option<(u16, String)> {
        match self.close_reason.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}
