//! Publishing helpers for the scenarios that need events on many channels rather than a timed
//! stream to measure: a fixed number per channel as fast as a few keep-alive connections allow,
//! or a steady rate in the background until told to stop.
//!
//! Every event's data is `{"t":<send time in µs>,"p":"…"}`, like `fanout`'s, so a receiver can
//! read a latency from it if it wants one.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::http_client::ApiClient;
use crate::target::{now_micros, Target};

/// Outcome of a publishing run: triggers answered 200, and the others (including failed
/// requests).
#[derive(Clone, Copy, Debug, Default)]
pub struct Published {
    pub ok: u64,
    pub failed: u64,
}

impl Published {
    fn add(&mut self, o: Published) {
        self.ok += o.ok;
        self.failed += o.failed;
    }
}

fn data(pad: &str) -> String {
    format!("{{\"t\":{},\"p\":\"{pad}\"}}", now_micros())
}

/// Publishes `per_channel` events to each channel (round-robin over the channels, so every
/// channel advances together) over `connections` keep-alive connections, and returns when all
/// were answered.
pub async fn each_channel(
    t: &Target,
    channels: &[String],
    per_channel: usize,
    connections: usize,
    payload: usize,
) -> Published {
    let total = channels.len() * per_channel;
    let next = Arc::new(AtomicUsize::new(0));
    let channels: Arc<Vec<String>> = Arc::new(channels.to_vec());
    let pad: Arc<str> = "x".repeat(payload.saturating_sub(24)).into();
    let mut workers = Vec::new();
    for _ in 0..connections.max(1) {
        let (t, next, channels, pad) = (t.clone(), next.clone(), channels.clone(), pad.clone());
        workers.push(tokio::spawn(async move {
            let mut out = Published::default();
            let Ok(mut api) = ApiClient::connect(&t).await else {
                return out;
            };
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let Some(channel) = channels.get(n % channels.len()) else {
                    break;
                };
                match api.trigger(channel, "bench", &data(&pad)).await {
                    Ok((200, _)) => out.ok += 1,
                    Ok(_) => out.failed += 1,
                    Err(_) => {
                        out.failed += 1;
                        match ApiClient::connect(&t).await {
                            Ok(a) => api = a,
                            Err(_) => break,
                        }
                    }
                }
            }
            out
        }));
    }
    let mut all = Published::default();
    for w in workers {
        if let Ok(p) = w.await {
            all.add(p);
        }
    }
    // Events nobody got to (every connection failed) count as failed.
    let answered = (all.ok + all.failed) as usize;
    all.failed += total.saturating_sub(answered) as u64;
    all
}

/// A background publisher: `rate` events per second round-robin over the channels, one
/// connection, until `stop` turns true. The counts are readable while it runs.
pub struct Live {
    pub ok: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Live {
    pub fn start(t: &Target, channels: &[String], rate: f64, payload: usize) -> Live {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = watch::channel(false);
        let (t, channels) = (t.clone(), channels.to_vec());
        let (ok2, failed2) = (ok.clone(), failed.clone());
        let pad = "x".repeat(payload.saturating_sub(24));
        let task = tokio::spawn(async move {
            if rate <= 0.0 || channels.is_empty() {
                return;
            }
            let Ok(mut api) = ApiClient::connect(&t).await else {
                return;
            };
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for channel in channels.iter().cycle() {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                match api.trigger(channel, "bench", &data(&pad)).await {
                    Ok((200, _)) => {
                        ok2.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        failed2.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed2.fetch_add(1, Ordering::Relaxed);
                        match ApiClient::connect(&t).await {
                            Ok(a) => api = a,
                            Err(_) => break,
                        }
                    }
                }
            }
        });
        Live {
            ok,
            failed,
            stop,
            task,
        }
    }

    /// Stops after the request in flight and returns the totals.
    pub async fn stop(self) -> Published {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        Published {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}
