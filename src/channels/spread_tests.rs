//! Spreading a broadcast's sends (`spread.rs`) over real connection queues.

use super::*;
use crate::channels::handle::Receiver;
use crate::protocol::socket_id::SocketId;

fn connections(n: u64) -> Vec<(ConnHandle, Receiver)> {
    (0..n)
        .map(|i| ConnHandle::new(SocketId(i, i), 100))
        .collect()
}

fn frame(text: String) -> Frame {
    Frame::from(text)
}

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_send_is_done_when_spread_returns_and_closed_connections_are_not_counted() {
    let conns = connections(1000);
    // Ten connections are gone: their sends fail and are not counted.
    let (live, gone): (Vec<_>, Vec<_>) = conns
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 100 != 0);
    let gone: Vec<ConnHandle> = gone.into_iter().map(|(_, (h, _))| h).collect();
    // Frame i goes to connection i; the last one, to every closed connection.
    let mut frames: Vec<Frame> = (0..1000).map(|i| frame(format!("to {i}"))).collect();
    frames.push(frame("lost".into()));
    let sends: Vec<Delivery> = live
        .iter()
        .map(|(i, (h, _))| (h.clone(), *i as u32))
        .chain(gone.iter().map(|h| (h.clone(), 1000)))
        .collect();
    let refs: Vec<&Frame> = frames.iter().collect();
    assert_eq!(spread(sends, &refs), 990);
    // Nothing is still on its way: every live queue holds its frame already.
    for (i, (_, rx)) in &live {
        assert_eq!(
            rx.try_recv().map(|f| f.to_string()),
            Some(format!("to {i}"))
        );
        assert!(rx.try_recv().is_none(), "exactly once");
    }
}

#[test]
fn helpers_take_part_of_a_large_broadcast() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores == 1 {
        eprintln!("one core: no helpers to check");
        return;
    }
    let conns = connections(20_000);
    let before = HELPED.load(Ordering::Relaxed);
    // A helper that is slow to wake has its part taken back; over a few rounds one gets there.
    for _ in 0..20 {
        let sends: Vec<Delivery> = conns.iter().map(|(h, _)| (h.clone(), 0)).collect();
        assert_eq!(spread(sends, &[&frame("x".into())]), 20_000);
        if HELPED.load(Ordering::Relaxed) > before {
            break;
        }
    }
    assert!(
        HELPED.load(Ordering::Relaxed) > before,
        "no helper wrote a part"
    );
    assert!(
        thread_names().iter().any(|n| n == "clarion-fan-1"),
        "{:?}",
        thread_names()
    );
}

#[test]
fn a_connection_gets_broadcasts_in_order_wherever_it_falls_in_the_list() {
    let conns = connections(600);
    for round in 0..40 {
        // Rotate the list so each connection moves between the parts from one round to the next.
        let shift = (round * 137) % conns.len();
        let sends: Vec<Delivery> = conns
            .iter()
            .cycle()
            .skip(shift)
            .take(conns.len())
            .map(|(h, _)| (h.clone(), 0))
            .collect();
        assert_eq!(spread(sends, &[&frame(round.to_string())]), 600);
    }
    for (_, rx) in &conns {
        let got: Vec<String> =
            std::iter::from_fn(|| rx.try_recv().map(|f| f.to_string())).collect();
        let want: Vec<String> = (0..40).map(|r: usize| r.to_string()).collect();
        assert_eq!(got, want);
    }
}
