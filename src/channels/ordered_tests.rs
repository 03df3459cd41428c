//! Unit tests of `ordered`: the rules an opted-in subscriber follows in a cluster.
use super::*;
use crate::channels::handle::Receiver;
use serde_json::Value;

const CH: &str = "private-a";

fn conn(n: u64) -> (ConnHandle, Receiver) {
    ConnHandle::new(SocketId(n, n), 2000)
}

fn at(offset: u64) -> Position {
    Position {
        epoch: "e1".into(),
        offset,
    }
}

fn event(n: u64) -> Frame {
    crate::protocol::frames::envelope("e", Some(CH), Some(&format!("\"{n}\"")), None)
}

/// `(event, data, stamped offset)` of everything queued.
fn drain(rx: &Receiver) -> Vec<(String, String, Option<u64>)> {
    std::iter::from_fn(|| rx.try_recv())
        .map(|f| {
            let v: Value = serde_json::from_str(f.as_str()).expect("json");
            (
                v["event"].as_str().unwrap_or("").to_string(),
                v["data"].as_str().unwrap_or("").to_string(),
                v["clarion"]["offset"].as_u64(),
            )
        })
        .collect()
}

fn reading(ns: &Namespace, c: &ConnHandle) {
    ns.subscribe_with(CH, c, None, 0, Follow::reading())
        .expect("subscribes");
}

#[test]
fn events_wait_for_the_replay_and_nothing_at_or_below_the_head_comes_twice() {
    let ns = Namespace::default();
    let (plain, plain_rx) = conn(1);
    ns.subscribe(CH, &plain, None, 0).expect("plain");
    let (c, rx) = conn(2);
    reading(&ns, &c);
    // Events 3..=5 arrive while history is read; the read saw head 4.
    for n in 3..=5 {
        ns.deliver_numbered(CH, &event(n), &at(n), None);
    }
    ns.broadcast(CH, &event(99), None); // a whisper, outside the numbering
    assert!(drain(&rx).is_empty(), "nothing before the replay");
    let announce = vec![Frame::from("{\"event\":\"succeeded\"}"), event(4)];
    assert!(ns.go_live(CH, c.socket_id, announce, Some(&at(4))));
    let got = drain(&rx);
    let names: Vec<(&str, &str, Option<u64>)> = got
        .iter()
        .map(|(e, d, o)| (e.as_str(), d.as_str(), *o))
        .collect();
    assert_eq!(
        names,
        [
            ("succeeded", "", None),
            ("e", "4", None),
            ("e", "5", Some(5)),
            ("e", "99", None),
        ],
        "3 and 4 were in history, 5 is released stamped, the whisper keeps its place"
    );
    ns.deliver_numbered(CH, &event(6), &at(6), None);
    ns.deliver_numbered(CH, &event(6), &at(6), None);
    assert_eq!(drain(&rx), [("e".into(), "6".into(), Some(6))], "once");
    // Plain subscribers see every event, unstamped, as they came.
    let plain_got = drain(&plain_rx);
    assert_eq!(plain_got.len(), 6);
    assert!(plain_got.iter().all(|(_, _, o)| o.is_none()));
}

#[test]
fn a_gap_or_another_epoch_closes_the_connection_to_recover() {
    let ns = Namespace::default();
    let (c, rx) = conn(2);
    reading(&ns, &c);
    ns.go_live(CH, c.socket_id, Vec::new(), Some(&at(2)));
    ns.deliver_numbered(CH, &event(3), &at(3), None);
    assert_eq!(drain(&rx).len(), 1);
    ns.deliver_numbered(CH, &event(5), &at(5), None); // 4 went missing
    assert_eq!(c.pending_close(), Some(Fatal::RecoveryGap));
    assert_eq!(Fatal::RecoveryGap.code(), 4200);
    ns.deliver_numbered(CH, &event(6), &at(6), None);
    assert!(drain(&rx).is_empty(), "nothing after the gap");

    let (d, _drx) = conn(3);
    reading(&ns, &d);
    ns.go_live(CH, d.socket_id, Vec::new(), Some(&at(6)));
    let other = Position {
        epoch: "e2".into(),
        offset: 1,
    };
    ns.deliver_numbered(CH, &event(1), &other, None);
    assert_eq!(d.pending_close(), Some(Fatal::RecoveryGap));
}

#[test]
fn an_excluded_event_moves_the_floor_without_being_sent() {
    let ns = Namespace::default();
    let (c, rx) = conn(2);
    reading(&ns, &c);
    ns.deliver_numbered(CH, &event(1), &at(1), Some(c.socket_id));
    ns.go_live(CH, c.socket_id, Vec::new(), Some(&at(0)));
    ns.deliver_numbered(CH, &event(2), &at(2), Some(c.socket_id));
    ns.deliver_numbered(CH, &event(3), &at(3), None);
    assert_eq!(drain(&rx), [("e".into(), "3".into(), Some(3))]);
    assert_eq!(c.pending_close(), None, "1 and 2 were not gaps");
}

#[test]
fn too_much_waiting_closes_and_unknown_history_means_plain_frames() {
    let ns = Namespace::default();
    let (c, _rx) = conn(2);
    reading(&ns, &c);
    for n in 1..=WAITING_MAX as u64 {
        ns.deliver_numbered(CH, &event(n), &at(n), None);
    }
    assert_eq!(c.pending_close(), None);
    ns.deliver_numbered(CH, &event(0), &at(0), None);
    assert_eq!(c.pending_close(), Some(Fatal::RecoveryGap));
    assert!(
        !ns.go_live(CH, c.socket_id, Vec::new(), Some(&at(0))),
        "closed: no replay is queued"
    );

    let (d, drx) = conn(3);
    reading(&ns, &d);
    ns.deliver_numbered(CH, &event(7), &at(7), None);
    ns.go_live(CH, d.socket_id, Vec::new(), None);
    ns.deliver_numbered(CH, &event(9), &at(9), None);
    assert_eq!(
        drain(&drx),
        [
            ("e".into(), "7".into(), None),
            ("e".into(), "9".into(), None)
        ],
        "history unreadable: plain frames, no gap detection"
    );
}

#[test]
fn a_lost_bus_closes_only_the_numbered_followers() {
    let ns = Namespace::default();
    let (plain, _p) = conn(1);
    ns.subscribe(CH, &plain, None, 0).expect("plain");
    let (c, _rx) = conn(2);
    reading(&ns, &c);
    ns.go_live(CH, c.socket_id, Vec::new(), Some(&at(0)));
    assert_eq!(ns.close_numbered(), 1);
    assert_eq!(c.pending_close(), Some(Fatal::RecoveryGap));
    assert_eq!(plain.pending_close(), None);
    assert_eq!(ns.close_numbered(), 0, "already closed");
}
