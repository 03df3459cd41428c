//! Unit tests of `namespace`, kept apart so the module itself stays short.
use super::*;
use crate::channels::handle::Receiver;
use serde_json::json;

fn conn(n: u64) -> (ConnHandle, Receiver) {
    ConnHandle::new(SocketId(n, n), 10)
}

fn member(id: &str) -> Option<Member> {
    Some(Member {
        key: id.into(),
        user_id: json!(id),
        user_info: json!({"name": id}),
    })
}

#[test]
fn member_added_once_per_user_member_removed_after_the_last_connection() {
    let ns = Namespace::default();
    let (tab1, _r1) = conn(1);
    let (tab2, _r2) = conn(2);
    let first = ns
        .subscribe("presence-a", &tab1, member("u"), 0)
        .expect("joins");
    assert!(first.member_added && first.occupied);
    let second = ns
        .subscribe("presence-a", &tab2, member("u"), 0)
        .expect("joins");
    assert!(!second.member_added && !second.occupied);
    let roster = second.presence.expect("presence channel");
    assert_eq!(roster.ids, vec![json!("u")], "one member for two tabs");

    let left = ns.unsubscribe("presence-a", tab1.socket_id);
    assert_eq!(left.member_removed, None, "the user still has a tab");
    assert_eq!(left.member, Some(("u".into(), json!("u"))));
    assert!(!left.vacated);
    let left = ns.unsubscribe("presence-a", tab2.socket_id);
    assert_eq!(left.member_removed, Some(json!("u")));
    assert!(left.vacated);
    assert_eq!(ns.channel_count(), 0, "an empty channel is dropped");
}

#[test]
fn a_full_presence_channel_refuses_new_users_but_not_more_tabs_of_a_member() {
    let ns = Namespace::default();
    let (a, _ra) = conn(1);
    let (a2, _ra2) = conn(2);
    let (b, _rb) = conn(3);
    ns.subscribe("presence-a", &a, member("a"), 1)
        .expect("first member");
    assert_eq!(
        ns.subscribe("presence-a", &b, member("b"), 1).err(),
        Some(SubscribeError::ChannelFull { limit: 1 })
    );
    ns.subscribe("presence-a", &a2, member("a"), 1)
        .expect("the same user may add connections");
    assert_eq!(ns.channel_stats("presence-a").user_count, 1);
    assert_eq!(ns.channel_stats("presence-a").subscription_count, 2);
}

#[test]
fn a_repeated_subscribe_changes_nothing_and_counts_follow_subscribers() {
    let ns = Namespace::default();
    let (a, _ra) = conn(1);
    let (b, _rb) = conn(2);
    let s = ns.subscribe("news", &a, None, 0).expect("public");
    assert!(s.added && s.occupied && s.presence.is_none());
    assert_eq!(s.subscription_count, 1);
    let again = ns.subscribe("news", &a, None, 0).expect("public");
    assert!(!again.added && !again.occupied);
    assert_eq!(
        ns.subscribe("news", &b, None, 0)
            .expect("public")
            .subscription_count,
        2
    );
    assert!(!ns.unsubscribe("news", SocketId(9, 9)).was_subscribed);
    let left = ns.unsubscribe("news", a.socket_id);
    assert!(left.was_subscribed && !left.vacated);
    assert_eq!(left.subscription_count, 1);
}

#[test]
fn broadcast_skips_the_excluded_socket() {
    let ns = Namespace::default();
    let (a, ra) = conn(1);
    let (b, rb) = conn(2);
    ns.subscribe("news", &a, None, 0).expect("public");
    ns.subscribe("news", &b, None, 0).expect("public");
    let sent = ns.broadcast("news", &Frame::from("x"), Some(a.socket_id));
    assert_eq!(sent, 1);
    assert!(ra.try_recv().is_none());
    assert_eq!(rb.try_recv().map(|f| f.to_string()), Some("x".into()));
    assert_eq!(ns.broadcast("nobody-here", &Frame::from("x"), None), 0);
}

#[test]
fn a_large_channel_sent_to_after_the_lock_is_let_go_gets_the_same_deliveries_and_counts() {
    let ns = Namespace::default();
    let n = SEND_UNDER_LOCK_UP_TO as u64 + 36;
    let conns: Vec<_> = (1..=n).map(conn).collect();
    for (h, _) in &conns {
        ns.subscribe("big", h, None, 0).expect("public");
    }
    // The first subscriber is full: its send fails and is not counted.
    let (small, _rs) = ConnHandle::new(SocketId(999, 999), 1);
    ns.subscribe("big", &small, None, 0).expect("public");
    assert!(small.send(Frame::from("filler")));
    let sent = ns.broadcast("big", &Frame::from("y"), Some(conns[0].0.socket_id));
    assert_eq!(
        sent,
        n as usize - 1,
        "all but the excluded and the full one"
    );
    assert!(conns[0].1.try_recv().is_none());
    for (_, rx) in &conns[1..] {
        assert_eq!(rx.try_recv().map(|f| f.to_string()), Some("y".into()));
    }
}

#[test]
fn only_a_large_quiet_channel_defers_and_a_busy_one_is_never_written_by_the_sender() {
    let ns = Namespace::default();
    let conns: Vec<_> = (1..=SEND_UNDER_LOCK_UP_TO as u64).map(conn).collect();
    for (h, _) in &conns {
        ns.subscribe("big", h, None, 0).expect("public");
    }
    let broadcast = |at| ns.channels.get("big").map(|c| c.broadcast(at));
    let mut t = 1_000u32;
    assert_eq!(
        broadcast(t),
        Some((true, false)),
        "at the threshold the sends stay under the lock"
    );
    let (extra, _rx) = conn(SEND_UNDER_LOCK_UP_TO as u64 + 1);
    ns.subscribe("big", &extra, None, 0).expect("public");
    t += 1_000;
    assert_eq!(
        broadcast(t),
        Some((true, true)),
        "large and quiet: deferred"
    );
    for _ in 0..50 {
        t += 2;
        broadcast(t);
    }
    assert_eq!(
        broadcast(t + 2),
        Some((false, false)),
        "busy: sent under the lock, queued for the tasks"
    );
}

#[test]
fn the_connection_limit_holds_and_removal_is_idempotent() {
    let ns = Namespace::default();
    let (a, _ra) = conn(1);
    let (b, _rb) = conn(2);
    assert!(ns.add_connection(a.clone(), 1));
    assert!(!ns.add_connection(b.clone(), 1), "over max_connections");
    assert_eq!(ns.connection_count(), 1);
    ns.remove_connection(a.socket_id, None, false);
    ns.remove_connection(a.socket_id, None, false);
    assert_eq!(ns.connection_count(), 0);
    assert!(ns.add_connection(b, 1));
}

#[test]
fn terminate_user_closes_exactly_that_users_connections() {
    let ns = Namespace::default();
    let (a, ra) = conn(1);
    let (b, rb) = conn(2);
    ns.add_connection(a.clone(), 0);
    ns.add_connection(b.clone(), 0);
    ns.add_user("alice", a.socket_id, false);
    assert_eq!(ns.terminate_user("alice"), 1);
    assert_eq!(
        ra.poll_close(),
        std::task::Poll::Ready(Fatal::TerminatedByApp)
    );
    assert_eq!(rb.poll_close(), std::task::Poll::Pending);
    ns.remove_connection(a.socket_id, Some("alice"), false);
    assert_eq!(
        ns.terminate_user("alice"),
        0,
        "sign-in forgotten with the connection"
    );
}
