//! One app's webhook queue: holds back `channel_vacated`/`member_removed`, cancels them when
//! the channel or member comes back, batches when asked, and sends with bounded concurrency and
//! retries. Emitting never waits: the WebSocket path only pushes onto a bounded queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use super::event::{Event, Kind};
use crate::app::{App, Webhook};
use crate::net::http_client as sender;
use crate::protocol::signature;

/// Settings shared by every app (from the server config).
#[derive(Clone, Debug)]
pub struct Settings {
    pub delay: Duration,
    pub timeout: Duration,
    pub retry_for: Duration,
    pub queue_size: usize,
    pub concurrency: usize,
    pub batch_window: Duration,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Event>,
    /// Held-back events (removals, throttled counts) with the time they become due.
    delayed: Vec<(Instant, Event)>,
    /// When a busy channel's subscription_count was last queued.
    counts_sent: std::collections::HashMap<String, Instant>,
}

/// Above this many subscribers a channel's subscription_count is sent at most every
/// `COUNT_INTERVAL` (Pusher's documented throttle); the latest count wins.
const BUSY_CHANNEL: usize = 100;
const COUNT_INTERVAL: Duration = Duration::from_secs(5);

pub struct AppHooks {
    /// The app's current settings (replaced when a reload changes them).
    app: Mutex<Arc<App>>,
    settings: Settings,
    queue: Mutex<Queue>,
    wake: Notify,
    pub dropped: AtomicU64,
    /// Requests answered with 2xx, and requests given up on (for the metrics).
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    last_drop_log: Mutex<Option<Instant>>,
    /// Requests being sent (including their retries).
    in_flight: std::sync::atomic::AtomicUsize,
}

impl AppHooks {
    pub fn start(app: Arc<App>, settings: Settings) -> Arc<AppHooks> {
        let hooks = Arc::new(AppHooks {
            app: Mutex::new(app),
            settings,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_drop_log: Mutex::new(None),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        });
        tokio::spawn(run(hooks.clone()));
        hooks
    }

    /// The app's current settings.
    pub fn app(&self) -> Arc<App> {
        crate::sync::lock(&self.app).clone()
    }

    /// Takes new settings of the app (targets, secret) after a reload.
    pub fn update_app(&self, app: &Arc<App>) {
        let mut g = crate::sync::lock(&self.app);
        if !Arc::ptr_eq(&g, app) && **g != **app {
            *g = app.clone();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        crate::sync::lock(&self.queue)
    }

    /// Queues an event (never blocks). A quick return cancels a held-back removal and is not
    /// reported either, so a page reload produces no vacated/occupied pair.
    pub fn emit(&self, e: Event) {
        tracing::debug!(app = %self.app().id, event = e.kind.name(), channel = %e.channel, "webhook event");
        let mut q = self.lock();
        let cancels = match e.kind {
            Kind::ChannelOccupied => Some(Kind::ChannelVacated),
            Kind::MemberAdded => Some(Kind::MemberRemoved),
            _ => None,
        };
        if let Some(kind) = cancels {
            if let Some(i) = q.delayed.iter().position(|(_, d)| {
                d.kind == kind && d.channel == e.channel && d.user_id == e.user_id
            }) {
                q.delayed.remove(i);
                return;
            }
        }
        let now = Instant::now();
        if matches!(e.kind, Kind::ChannelVacated | Kind::MemberRemoved) {
            q.delayed.push((now + self.settings.delay, e));
        } else if e.kind == Kind::SubscriptionCount && e.count().is_some_and(|n| n > BUSY_CHANNEL) {
            // A pending count for the channel is replaced by this newer one.
            if let Some(slot) = q
                .delayed
                .iter_mut()
                .find(|(_, d)| d.kind == Kind::SubscriptionCount && d.channel == e.channel)
            {
                slot.1 = e;
                return;
            }
            let due = q
                .counts_sent
                .get(&e.channel)
                .map_or(now, |t| *t + COUNT_INTERVAL);
            q.counts_sent.insert(e.channel.clone(), due.max(now));
            if due > now {
                q.delayed.push((due, e));
            } else {
                q.ready.push_back(e);
            }
        } else {
            q.ready.push_back(e);
        }
        let mut dropped = 0;
        q.counts_sent
            .retain(|_, t| now.saturating_duration_since(*t) < COUNT_INTERVAL);
        while q.ready.len() + q.delayed.len() > self.settings.queue_size {
            if q.ready.pop_front().is_none() {
                q.delayed.remove(0);
            }
            dropped += 1;
        }
        drop(q);
        if dropped > 0 {
            self.note_dropped(dropped);
        }
        self.wake.notify_one();
    }

    fn note_dropped(&self, n: u64) {
        let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
        let mut last = crate::sync::lock(&self.last_drop_log);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            *last = Some(Instant::now());
            tracing::warn!(app = %self.app().id, dropped_total = total, "webhook queue full: oldest events dropped");
        }
    }

    /// Moves due removals to the ready queue; returns the next deadline, if any.
    fn release_due(&self, now: Instant) -> Option<Instant> {
        let mut q = self.lock();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut q.delayed)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        q.delayed = waiting;
        q.ready.extend(due.into_iter().map(|(_, e)| e));
        q.delayed.iter().map(|(t, _)| *t).min()
    }

    /// Events queued or being sent.
    pub fn pending(&self) -> usize {
        let q = self.lock();
        q.ready.len() + q.delayed.len() + self.in_flight.load(Ordering::Relaxed)
    }

    /// Makes every held-back event due now (shutdown: send what would otherwise be lost).
    pub fn flush_now(&self) {
        let mut q = self.lock();
        let now = Instant::now();
        for (due, _) in q.delayed.iter_mut() {
            *due = now;
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Takes the ready events. While they are handed to senders they count as in flight (set
    /// under the queue lock), so `pending` never sees them as gone too early.
    fn take_ready(&self) -> Vec<Event> {
        let mut q = self.lock();
        let events: Vec<Event> = q.ready.drain(..).collect();
        if !events.is_empty() {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        events
    }
}

/// The app's sending loop; it lives as long as the server (apps' queues are never removed).
async fn run(this: Arc<AppHooks>) {
    let sem = Arc::new(Semaphore::new(this.settings.concurrency));
    loop {
        let next = this.release_due(Instant::now());
        let events = this.take_ready();
        if events.is_empty() {
            let wait = next.map_or(Duration::from_secs(3600), |t| {
                t.saturating_duration_since(Instant::now())
            });
            let notified = this.wake.notified();
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        let app = this.app();
        let mut taken = 1;
        if app.webhook_batching {
            // Gather what else arrives within the window into the same requests.
            tokio::time::sleep(this.settings.batch_window).await;
            let mut events = events;
            let more = this.take_ready();
            if !more.is_empty() {
                taken += 1;
            }
            events.extend(more);
            for target in &app.webhooks {
                let chosen: Vec<&Event> = events.iter().filter(|e| wants(target, e)).collect();
                for chunk in chosen.chunks(50) {
                    dispatch(&this, &sem, target, chunk).await;
                }
            }
        } else {
            for e in &events {
                for target in &app.webhooks {
                    if wants(target, e) {
                        dispatch(&this, &sem, target, &[e]).await;
                    }
                }
            }
        }
        this.in_flight.fetch_sub(taken, Ordering::Relaxed);
    }
}

/// Whether a target takes this event (event type and channel filter).
fn wants(target: &Webhook, e: &Event) -> bool {
    (target.event_types.is_empty() || target.event_types.contains(&e.kind))
        && e.channel
            .starts_with(&target.filter.channel_name_starts_with)
        && e.channel.ends_with(&target.filter.channel_name_ends_with)
}

/// Builds the signed request and sends it on its own task, within the concurrency limit.
async fn dispatch(
    hooks: &Arc<AppHooks>,
    sem: &Arc<Semaphore>,
    target: &Webhook,
    events: &[&Event],
) {
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let list: Vec<serde_json::Value> = events.iter().map(|e| e.to_json()).collect();
    let body = json!({"time_ms": time_ms, "events": list}).to_string();
    let mut headers: Vec<(String, String)> = target
        .headers
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k != "x-pusher-key" && k != "x-pusher-signature" && k != "content-type" && k != "host"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    headers.push(("content-type".into(), "application/json".into()));
    let app = hooks.app();
    headers.push(("x-pusher-key".into(), app.key.clone()));
    headers.push((
        "x-pusher-signature".into(),
        signature::sign(&app.secret, &body),
    ));
    let Ok(url) = target.url.parse::<hyper::Uri>() else {
        return;
    };
    let Ok(permit) = sem.clone().acquire_owned().await else {
        return;
    };
    let settings = hooks.settings.clone();
    let hooks = hooks.clone();
    hooks.in_flight.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let _permit = permit;
        if deliver(&app.id, &url, &headers, Bytes::from(body), &settings).await {
            hooks.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            hooks.failed.fetch_add(1, Ordering::Relaxed);
        }
        hooks.in_flight.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Sends with retries: timeouts, connection errors, 429 and 5xx are retried with exponential
/// backoff for up to `retry_for`; any other status ends the attempt. True when delivered.
async fn deliver(
    app_id: &str,
    url: &hyper::Uri,
    headers: &[(String, String)],
    body: Bytes,
    s: &Settings,
) -> bool {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(500);
    loop {
        let outcome = sender::post(url, headers, body.clone(), s.timeout).await;
        // Credentials in a webhook URL stay out of the logs.
        let shown = crate::config::mask_url_password(&url.to_string());
        tracing::debug!(app = app_id, url = %shown, outcome = ?outcome, "webhook sent");
        let retry = match &outcome {
            Ok(status) if (200..300).contains(status) => return true,
            Ok(status) if *status == 429 || *status >= 500 => true,
            Ok(status) => {
                tracing::warn!(app = app_id, url = %shown, status, "webhook refused; not retried");
                return false;
            }
            Err(_) => true,
        };
        if !retry || started.elapsed() + backoff > s.retry_for {
            tracing::warn!(app = app_id, url = %shown, outcome = ?outcome, "webhook given up after retries");
            return false;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks() -> AppHooks {
        AppHooks {
            app: Mutex::new(Arc::new(App::default())),
            settings: Settings {
                delay: Duration::from_secs(3),
                timeout: Duration::from_secs(1),
                retry_for: Duration::from_secs(1),
                queue_size: 4,
                concurrency: 1,
                batch_window: Duration::from_millis(1),
            },
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_drop_log: Mutex::new(None),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    #[test]
    fn removals_wait_and_a_return_cancels_both() {
        let h = hooks();
        h.emit(Event::channel_vacated("a"));
        assert!(h.take_ready().is_empty());
        h.emit(Event::channel_occupied("a"));
        assert!(h.take_ready().is_empty());
        assert!(h.lock().delayed.is_empty());
    }

    #[test]
    fn busy_channel_counts_are_throttled_to_the_latest() {
        let h = hooks();
        h.emit(Event::subscription_count("busy", 101));
        h.emit(Event::subscription_count("busy", 102));
        h.emit(Event::subscription_count("busy", 103));
        let ready = h.take_ready();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].count(), Some(101));
        let q = h.lock();
        assert_eq!(q.delayed.len(), 1);
        assert_eq!(q.delayed[0].1.count(), Some(103));
        drop(q);
        // Quiet channels are not throttled.
        h.emit(Event::subscription_count("quiet", 1));
        h.emit(Event::subscription_count("quiet", 2));
        assert_eq!(h.take_ready().len(), 2);
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let h = hooks();
        for i in 0..6 {
            h.emit(Event::channel_occupied(&format!("c{i}")));
        }
        let ready = h.take_ready();
        assert_eq!(ready.len(), 4);
        assert_eq!(ready[0].channel, "c2");
        assert_eq!(h.dropped.load(Ordering::Relaxed), 2);
    }
}
