//! Senders writing to an idle connection's socket themselves (`direct.rs`, `handle.rs`), over a
//! real loopback TCP connection: what arrives is a valid WebSocket frame, in order with what
//! the task writes, and only while the rules allow it.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::noop_waker;

use super::*;
use crate::channels::direct::{self, Socket};

/// A connected pair: (the server's socket, as tokio would leave it: non-blocking; the client).
fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (server, _) = l.accept().expect("accept");
    server.set_nonblocking(true).expect("non-blocking");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    (server, client)
}

/// A handle whose senders may write to `server`, and a count of the frames they wrote.
fn direct_handle(server: &TcpStream) -> (ConnHandle, Receiver, Arc<AtomicUsize>) {
    let (h, rx) = ConnHandle::new(SocketId(1, 1), 100);
    let counted = Arc::new(AtomicUsize::new(0));
    let c = counted.clone();
    h.allow_direct(Socket::new(
        server.as_raw_fd(),
        Arc::new(direct::CountSent::new(move |n, _| {
            c.fetch_add(n as usize, AtomicOrdering::Relaxed);
        })),
    ));
    (h, rx, counted)
}

/// Pretends the connection was last active just now (`recently`) or `HOT` ago (cold).
fn set_last_active(h: &ConnHandle, recently: bool) {
    let now = super::coarse_ms();
    h.shared.lock().last_active = if recently {
        now
    } else {
        now.wrapping_sub(super::HOT_MS)
    };
}

/// The task's side: polls for the next thing to write (Pending marks the connection idle).
fn poll(rx: &Receiver) -> Poll<Outbound> {
    let waker = noop_waker();
    rx.poll_frame(&mut Context::from_waker(&waker))
}

/// Reads one unmasked text frame from the client side.
fn read_frame(client: &mut TcpStream) -> String {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).expect("header");
    assert_eq!(head[0], 0x81, "a final text frame");
    let len = match head[1] {
        126 => {
            let mut b = [0u8; 2];
            client.read_exact(&mut b).expect("length");
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            client.read_exact(&mut b).expect("length");
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    client.read_exact(&mut payload).expect("payload");
    String::from_utf8(payload).expect("utf-8")
}

fn text(s: &str) -> Frame {
    Frame::from(s.to_string())
}

#[test]
fn an_idle_connection_gets_the_frame_from_the_sender_and_its_task_is_not_woken() {
    let (server, mut client) = pair();
    let (h, rx, counted) = direct_handle(&server);
    assert!(poll(&rx).is_pending(), "the task waits: idle");
    let big = "x".repeat(300); // a 16-bit length header
    set_last_active(&h, false); // as if HOT had passed since the task's last write
    assert!(h.send(text("hello")));
    assert_eq!(read_frame(&mut client), "hello");
    set_last_active(&h, false); // as if HOT had passed
    assert!(h.send(text(&big)));
    assert_eq!(read_frame(&mut client), big);
    assert_eq!(counted.load(AtomicOrdering::Relaxed), 2);
    assert!(poll(&rx).is_pending(), "nothing was queued for the task");
}

#[test]
fn a_connection_written_to_moments_ago_is_left_to_its_task() {
    let (server, _client) = pair();
    let (h, rx, counted) = direct_handle(&server);
    assert!(poll(&rx).is_pending());
    set_last_active(&h, true);
    assert!(h.send(text("batched")));
    assert!(matches!(poll(&rx), Poll::Ready(Outbound::Frame(f)) if f.as_str() == "batched"));
    assert_eq!(counted.load(AtomicOrdering::Relaxed), 0);
}

#[test]
fn a_busy_channels_frame_is_queued_even_for_an_idle_cold_connection() {
    let (server, _client) = pair();
    let (h, rx, counted) = direct_handle(&server);
    assert!(poll(&rx).is_pending());
    set_last_active(&h, false);
    assert!(h.send_queued(&text("from a busy channel")));
    assert!(
        matches!(poll(&rx), Poll::Ready(Outbound::Frame(f)) if f.as_str() == "from a busy channel")
    );
    assert_eq!(counted.load(AtomicOrdering::Relaxed), 0, "nothing written");
    // Idle again: a plain send writes.
    assert!(poll(&rx).is_pending());
    set_last_active(&h, false);
    assert!(h.send(text("quiet")));
    assert_eq!(counted.load(AtomicOrdering::Relaxed), 1);
}

#[test]
fn no_direct_write_while_the_task_is_busy_or_frames_wait_or_after_it_is_gone() {
    let (server, mut client) = pair();
    let (h, rx, counted) = direct_handle(&server);
    // Before the task first waits (it has `connection_established` to write), frames queue.
    assert!(h.send(text("first")));
    assert!(h.send(text("second")));
    assert!(matches!(poll(&rx), Poll::Ready(Outbound::Frame(f)) if f.as_str() == "first"));
    assert!(matches!(poll(&rx), Poll::Ready(Outbound::Frame(f)) if f.as_str() == "second"));
    assert!(poll(&rx).is_pending());
    // The task takes the socket back (a pong, a close): frames queue again.
    rx.busy();
    assert!(h.send(text("third")));
    assert!(matches!(poll(&rx), Poll::Ready(Outbound::Frame(f)) if f.as_str() == "third"));
    assert_eq!(counted.load(AtomicOrdering::Relaxed), 0);
    // Idle again, then the task ends: the socket is no longer the senders'.
    assert!(poll(&rx).is_pending());
    set_last_active(&h, false);
    drop(rx);
    assert!(!h.send(text("late")));
    client
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buf = [0u8; 1];
    assert!(client.read(&mut buf).is_err(), "nothing was written");
}

#[test]
fn a_frame_the_socket_takes_only_part_of_is_finished_by_the_task_before_later_frames() {
    let (server, mut client) = pair();
    let (h, rx, counted) = direct_handle(&server);
    assert!(poll(&rx).is_pending());
    set_last_active(&h, false);
    // Larger than what loopback buffers take while the client does not read.
    let huge = "y".repeat(16 << 20);
    assert!(h.send(text(&huge)));
    assert!(h.send(text("after")), "queued behind the rest");
    assert!(
        rx.try_recv().is_none(),
        "the rest goes out only through poll_frame"
    );
    let Poll::Ready(Outbound::Rest(f, done)) = poll(&rx) else {
        panic!("the task is given the rest of the frame first");
    };
    assert!(done > 0 && done < huge.len(), "part went: {done}");
    assert_eq!(
        counted.load(AtomicOrdering::Relaxed),
        0,
        "a partial frame is the task's to count"
    );
    // The task's job, done here by hand: the rest of the framed bytes, then the next frame.
    let (head, used) = direct::header(f.len());
    let (hd, pl) = direct::framed_from(&head[..used], f.as_bytes(), done);
    let mut rest = hd.to_vec();
    rest.extend_from_slice(pl);
    let reader = std::thread::spawn(move || {
        let a = read_frame(&mut client);
        let b = read_frame(&mut client);
        (a.len(), b)
    });
    server.set_nonblocking(false).expect("blocking");
    (&server).write_all_blocking(&rest);
    let Poll::Ready(Outbound::Frame(next)) = poll(&rx) else {
        panic!("then the queued frame");
    };
    let (head, used) = direct::header(next.len());
    (&server).write_all_blocking(&head[..used]);
    (&server).write_all_blocking(next.as_bytes());
    let (first_len, second) = reader.join().expect("reader");
    assert_eq!(first_len, huge.len(), "the frame arrived whole");
    assert_eq!(second, "after");
}

trait WriteAllBlocking {
    fn write_all_blocking(self, bytes: &[u8]);
}

impl WriteAllBlocking for &TcpStream {
    fn write_all_blocking(mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self, bytes).expect("write");
    }
}

#[test]
fn headers_follow_rfc_6455_lengths() {
    assert_eq!(direct::header(5).1, 2);
    assert_eq!(
        direct::header(125),
        ([0x81, 125, 0, 0, 0, 0, 0, 0, 0, 0], 2)
    );
    assert_eq!(
        direct::header(126),
        ([0x81, 126, 0, 126, 0, 0, 0, 0, 0, 0], 4)
    );
    assert_eq!(direct::header(65535).1, 4);
    assert_eq!(
        direct::header(65536),
        ([0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0], 10)
    );
    let (h, p) = direct::framed_from(&[1, 2], &[3, 4, 5], 3);
    assert_eq!((h, p), (&[][..], &[4, 5][..]));
}

#[test]
fn a_broadcasts_writes_are_counted_once_when_its_tally_is_dropped() {
    let (server, mut client) = pair();
    let (h, rx) = ConnHandle::new(SocketId(1, 1), 100);
    // (calls, messages, bytes) of the app's counter.
    let seen = Arc::new(std::sync::Mutex::new((0, 0, 0)));
    let s = seen.clone();
    h.allow_direct(Socket::new(
        server.as_raw_fd(),
        Arc::new(direct::CountSent::new(move |n, bytes| {
            if let Ok(mut s) = s.lock() {
                *s = (s.0 + 1, s.1 + n, s.2 + bytes);
            }
        })),
    ));
    let shared = text("shared");
    let mut tally = direct::Tally::default();
    for _ in 0..3 {
        assert!(poll(&rx).is_pending());
        set_last_active(&h, false);
        assert!(h.send_shared(&shared, &mut tally));
        assert_eq!(read_frame(&mut client), "shared");
    }
    assert_eq!(*seen.lock().expect("lock"), (0, 0, 0), "counted at the end");
    drop(tally);
    assert_eq!(*seen.lock().expect("lock"), (1, 3, 18), "once, all three");
    // Written, not queued: the connection holds no copy of the broadcast's frame.
    let b: bytes::Bytes = shared.into();
    assert!(b.is_unique());
}
