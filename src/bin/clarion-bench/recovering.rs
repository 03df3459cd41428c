//! One opted-in subscriber of `reconnect-storm`: it keeps its position in the channel's history
//! as the plugin does (docs/recovery.md), loses its connection when told to or when the server
//! goes away, resubscribes from that position when the next generation starts, and checks what
//! it receives: every stamped event must follow the previous one by exactly one offset, and a
//! `clarion:recovery` marker must land on the last offset it holds.
//!
//! The checks use offsets only, so they need no knowledge of what was published: a skipped
//! offset is a missed event, an offset at or below the last one is a duplicate. Events still on
//! their way at the end are found by comparing the last offset with the channel's top.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::raw_ws::RawWs;
use crate::report::SharedHistogram;
use crate::target::{now_micros, Target};

/// What the orchestrator tells every subscriber: connect (`up`) in generation `gen` to node
/// `node`, stay away (`!up`), or finish (`stop`).
#[derive(Clone, Copy, Debug)]
pub struct Control {
    pub gen: u64,
    pub up: bool,
    pub node: usize,
    pub stop: bool,
}

/// Counters every subscriber updates and the orchestrator watches.
pub struct Shared {
    pub subscribes: AtomicU64,
    pub subscribe_failures: AtomicU64,
    /// Connections that ended (dropped on command, or closed by the server).
    pub down: AtomicU64,
    /// Stamped events received, all subscribers together.
    pub events: AtomicU64,
    pub markers: AtomicU64,
    pub recovered: AtomicU64,
    pub not_recovered: AtomicU64,
    pub replayed: AtomicU64,
    /// When the current storm started and when its last marker arrived (µs since the epoch).
    pub go_micros: AtomicU64,
    pub last_marker_micros: AtomicU64,
    /// From the storm's start, and from each resubscribe, to its marker.
    pub since_go: SharedHistogram,
    pub since_subscribe: SharedHistogram,
    /// Each subscriber's last offset, to see when the stragglers have caught up.
    pub last: Vec<AtomicU64>,
    pub ends: Mutex<BTreeMap<String, u64>>,
    pub first_error: Mutex<Option<String>>,
}

impl Shared {
    pub fn new(subscribers: usize) -> Shared {
        Shared {
            subscribes: AtomicU64::new(0),
            subscribe_failures: AtomicU64::new(0),
            down: AtomicU64::new(0),
            events: AtomicU64::new(0),
            markers: AtomicU64::new(0),
            recovered: AtomicU64::new(0),
            not_recovered: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            go_micros: AtomicU64::new(0),
            last_marker_micros: AtomicU64::new(0),
            since_go: SharedHistogram::new(),
            since_subscribe: SharedHistogram::new(),
            last: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            ends: Mutex::new(BTreeMap::new()),
            first_error: Mutex::new(None),
        }
    }

    fn note_end(&self, why: &str) {
        if let Ok(mut m) = self.ends.lock() {
            *m.entry(why.to_string()).or_insert(0) += 1;
        }
    }

    fn note_error(&self, e: String) {
        if let Ok(mut f) = self.first_error.lock() {
            f.get_or_insert(e);
        }
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// How the last resubscribe ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Recovered { replayed: u64 },
    Failed { reason: String },
}

/// One subscriber's view of its channel, and what its checks found.
#[derive(Debug, Default)]
pub struct Tracker {
    pub epoch: Option<String>,
    pub last: u64,
    pub socket_id: String,
    pub events: u64,
    pub missing: u64,
    pub duplicates: u64,
    /// Stamped events of another epoch without a marker announcing it.
    pub epoch_jumps: u64,
    pub unstamped: u64,
    pub errors: u64,
    pub outcome: Option<Outcome>,
    pub storm_failed: bool,
    subscribed_at: Option<Instant>,
}

#[derive(Deserialize)]
struct Incoming {
    event: String,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    clarion: Option<Stamp>,
}

#[derive(Deserialize)]
struct Stamp {
    epoch: String,
    offset: u64,
}

impl Tracker {
    /// The `clarion` member of the next subscribe: opt in, with the position once there is one.
    fn request(&self) -> Value {
        match &self.epoch {
            None => json!({"v": 1}),
            Some(e) => json!({"v": 1, "epoch": e, "offset": self.last,
                              "prev_socket_id": self.socket_id}),
        }
    }

    /// `subscription_succeeded`: its stamp is the head; it is the position only on the first
    /// subscribe (a resubscribe keeps its own and gets the replay next).
    fn on_succeeded(&mut self, m: &Value, i: usize, shared: &Shared) {
        let (Some(epoch), Some(offset)) = (
            m["clarion"]["epoch"].as_str(),
            m["clarion"]["offset"].as_u64(),
        ) else {
            self.unstamped += 1;
            return;
        };
        if self.epoch.is_none() {
            self.epoch = Some(epoch.to_string());
            self.set_last(offset, i, shared);
        }
    }

    fn set_last(&mut self, offset: u64, i: usize, shared: &Shared) {
        self.last = offset;
        if let Some(l) = shared.last.get(i) {
            l.store(offset, Ordering::Relaxed);
        }
    }

    fn on_frame(&mut self, text: &[u8], i: usize, shared: &Shared) {
        let Ok(m) = serde_json::from_slice::<Incoming>(text) else {
            self.errors += 1;
            return;
        };
        match m.event.as_str() {
            "clarion:recovery" => self.on_marker(m, i, shared),
            "pusher:error" => self.errors += 1,
            e if e.starts_with("pusher") => {}
            _ => self.on_event(m.clarion, i, shared),
        }
    }

    fn on_event(&mut self, stamp: Option<Stamp>, i: usize, shared: &Shared) {
        let Some(s) = stamp else {
            self.unstamped += 1;
            return;
        };
        self.events += 1;
        shared.events.fetch_add(1, Ordering::Relaxed);
        if self.epoch.as_deref() != Some(s.epoch.as_str()) {
            self.epoch_jumps += 1;
            self.epoch = Some(s.epoch);
            self.set_last(s.offset, i, shared);
        } else if s.offset == self.last + 1 {
            self.set_last(s.offset, i, shared);
        } else if s.offset > self.last {
            self.missing += s.offset - self.last - 1;
            self.set_last(s.offset, i, shared);
        } else {
            self.duplicates += 1;
        }
    }

    fn on_marker(&mut self, m: Incoming, i: usize, shared: &Shared) {
        let data: Value = m
            .data
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        let outcome = if data["recovered"] == true {
            let replayed = data["replayed"].as_u64().unwrap_or(0);
            shared.recovered.fetch_add(1, Ordering::Relaxed);
            shared.replayed.fetch_add(replayed, Ordering::Relaxed);
            // The marker carries the head: after the replay, this subscriber must be there.
            if let Some(s) = &m.clarion {
                if self.epoch.as_deref() == Some(s.epoch.as_str()) && s.offset > self.last {
                    self.missing += s.offset - self.last;
                    self.set_last(s.offset, i, shared);
                }
            }
            Outcome::Recovered { replayed }
        } else {
            shared.not_recovered.fetch_add(1, Ordering::Relaxed);
            // Not recovered: continue from the head the marker names.
            if let Some(s) = m.clarion {
                self.epoch = Some(s.epoch);
                self.set_last(s.offset, i, shared);
            }
            Outcome::Failed {
                reason: data["reason"].as_str().unwrap_or("?").to_string(),
            }
        };
        self.outcome = Some(outcome);
        let now = now_micros();
        let go = shared.go_micros.load(Ordering::Relaxed);
        shared.since_go.record(i, now.saturating_sub(go));
        if let Some(at) = self.subscribed_at.take() {
            shared
                .since_subscribe
                .record(i, at.elapsed().as_micros().max(1) as u64);
        }
        shared.last_marker_micros.fetch_max(now, Ordering::Relaxed);
        shared.markers.fetch_add(1, Ordering::Relaxed);
    }
}

/// Connects and subscribes from the current position, holding a connect permit (a bounded
/// number of handshakes at once, like a fleet of clients with jittered retries), with a few
/// retries for a node that is still coming up.
async fn connect(
    t: &Target,
    channel: &str,
    tr: &mut Tracker,
    i: usize,
    sem: &Semaphore,
    shared: &Shared,
) -> Result<RawWs, String> {
    let _permit = sem.acquire().await.map_err(|e| e.to_string())?;
    let mut last_err = String::new();
    for attempt in 1..=5u64 {
        let attempt_result = async {
            let (mut ws, sid) = RawWs::connect(t, None).await?;
            let sent = Instant::now();
            let ok = ws.subscribe_with(channel, Some(&tr.request())).await?;
            Ok::<_, String>((ws, sid, sent, ok))
        }
        .await;
        match attempt_result {
            Ok((ws, sid, sent, ok)) => {
                tr.subscribed_at = Some(sent);
                tr.on_succeeded(&ok, i, shared);
                tr.socket_id = sid;
                return Ok(ws);
            }
            Err(e) => last_err = e,
        }
        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
    }
    Err(last_err)
}

/// The subscriber's life: connect in each generation the orchestrator starts, read until the
/// connection ends or the generation does, then wait for the next. Returns its tracker when
/// told to stop. A subscriber whose first subscribe fails takes no further part.
pub async fn run(
    i: usize,
    nodes: Arc<Vec<Target>>,
    channel: String,
    mut control: watch::Receiver<Control>,
    shared: Arc<Shared>,
    sem: Arc<Semaphore>,
) -> Tracker {
    let mut tr = Tracker::default();
    let mut gen = 0;
    loop {
        let c = match control.wait_for(|c| c.stop || (c.up && c.gen >= gen)).await {
            Ok(c) => *c,
            Err(_) => break,
        };
        if c.stop {
            break;
        }
        gen = c.gen;
        let Some(t) = nodes.get(c.node) else { break };
        let mut ws = match connect(t, &channel, &mut tr, i, &sem, &shared).await {
            Ok(ws) => ws,
            Err(e) => {
                shared.subscribe_failures.fetch_add(1, Ordering::Relaxed);
                shared.note_error(format!("subscriber {i}: {e}"));
                if tr.epoch.is_none() {
                    break;
                }
                tr.storm_failed = true;
                gen += 1;
                continue;
            }
        };
        shared.subscribes.fetch_add(1, Ordering::Relaxed);
        let ended = tokio::select! {
            r = ws.read_messages(|text| {
                tr.on_frame(text, i, &shared);
                true
            }) => Some(r),
            _ = control.wait_for(|c| c.stop || !c.up || c.gen > gen) => None,
        };
        match ended {
            Some(Err(e)) => shared.note_end(&e),
            Some(Ok(())) => shared.note_end("ended"),
            None if control.borrow().stop => shared.note_end("closed at the end"),
            None => shared.note_end("dropped by the bench"),
        }
        drop(ws);
        shared.down.fetch_add(1, Ordering::Relaxed);
        gen += 1;
    }
    tr
}
