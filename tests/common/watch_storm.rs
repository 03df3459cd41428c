//! Many connections signing in at once, each watching every one of them: the race in which a
//! transition could overtake a connection's statuses frame (docs/protocol.md §10.1).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::{app1, decode_data, TestServer};

/// `n` connections spread over `servers` in turn, signed in as `u0`… at the same moment, each
/// watching all `n` ids. Returns each connection's `pusher_internal:watchlist_events` events,
/// in arrival order, once the storm is quiet.
pub async fn sign_in_storm(servers: &[&TestServer], n: usize) -> Vec<Vec<Value>> {
    let ids: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
    let mut clients = Vec::new();
    for i in 0..n {
        let server = servers[i % servers.len()];
        clients.push(server.connect("k").await);
    }
    let mut tasks = Vec::new();
    for (i, (mut c, sid)) in clients.into_iter().enumerate() {
        let user = json!({"id": format!("u{i}"), "watchlist": ids}).to_string();
        tasks.push(tokio::spawn(async move {
            c.sign_in(&app1(), &sid, &user).await;
            let mut frames = Vec::new();
            while let Some(m) = c.try_recv(Duration::from_millis(1500)).await {
                if m["event"] == "pusher_internal:watchlist_events" {
                    frames.push(decode_data(&m)["events"].clone());
                }
            }
            // Kept open until every connection has read its frames: a close would be a
            // transition of its own.
            (frames, c)
        }));
    }
    let mut all = Vec::new();
    let mut open = Vec::new();
    for t in tasks {
        let (frames, c) = t.await.expect("sign-in task");
        all.push(frames);
        open.push(c);
    }
    drop(open);
    all
}

/// Checks one connection's frames: the first names every watched id (the statuses), and
/// applying them in order leaves everyone online.
pub fn assert_statuses_first_and_all_online(frames: &[Value], n: usize, who: usize) {
    let first = frames.first().unwrap_or_else(|| panic!("u{who}: no frame"));
    let mut named: Vec<String> = first
        .as_array()
        .expect("events")
        .iter()
        .flat_map(|e| e["user_ids"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    named.sort();
    named.dedup();
    assert_eq!(
        named.len(),
        n,
        "u{who}: the first frame is the statuses of all {n}: {first}"
    );
    let mut state: BTreeMap<String, bool> = BTreeMap::new();
    for events in frames {
        for e in events.as_array().expect("events") {
            let online = e["name"] == "online";
            for id in e["user_ids"].as_array().expect("ids") {
                state.insert(id.as_str().expect("id").to_string(), online);
            }
        }
    }
    let offline: Vec<&String> = state
        .iter()
        .filter(|(_, on)| !**on)
        .map(|(k, _)| k)
        .collect();
    assert!(
        offline.is_empty(),
        "u{who} ends believing these are offline: {offline:?}"
    );
}
