//! Latency histograms and the two kinds of output: human lines and one JSON line.

use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// A histogram shared by many tasks. Recording goes to one of several shards (chosen by the
/// task) so that hundreds of thousands of recordings per second do not queue on one lock.
pub struct SharedHistogram {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl SharedHistogram {
    pub fn new() -> SharedHistogram {
        SharedHistogram {
            shards: (0..32).map(|_| Mutex::new(new_histogram())).collect(),
        }
    }

    /// Records a latency in microseconds from task number `who`.
    pub fn record(&self, who: usize, micros: u64) {
        let shard = &self.shards[who % self.shards.len()];
        if let Ok(mut h) = shard.lock() {
            h.saturating_record(micros.max(1));
        }
    }

    /// A recorder for one task that takes the lock once per batch of samples.
    pub fn local(self: &std::sync::Arc<Self>, who: usize) -> LocalSamples {
        LocalSamples {
            shared: self.clone(),
            who,
            samples: Vec::new(),
        }
    }

    /// All shards merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for s in &self.shards {
            if let Ok(h) = s.lock() {
                let _ = all.add(&*h);
            }
        }
        all
    }
}

/// Samples of one task, moved to the shared histogram 256 at a time and when dropped: at half a
/// million deliveries per second a lock and a histogram update per sample showed up in the
/// generator's profile (7% of it), CPU taken from the server under test.
pub struct LocalSamples {
    shared: std::sync::Arc<SharedHistogram>,
    who: usize,
    samples: Vec<u64>,
}

impl LocalSamples {
    pub fn record(&mut self, micros: u64) {
        if self.samples.capacity() == 0 {
            self.samples.reserve_exact(256);
        }
        self.samples.push(micros);
        if self.samples.len() == 256 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let shard = &self.shared.shards[self.who % self.shared.shards.len()];
        if let Ok(mut h) = shard.lock() {
            for &s in &self.samples {
                h.saturating_record(s.max(1));
            }
        }
        self.samples.clear();
    }
}

impl Drop for LocalSamples {
    fn drop(&mut self) {
        self.flush();
    }
}

/// 1 µs to 100 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

/// p50/p90/p99/p99.9/max in milliseconds, as JSON.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    let ms = |v: u64| (v as f64) / 1000.0;
    json!({
        "samples": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
    })
}

/// A one-line human summary of a latency histogram.
pub fn latency_line(h: &Histogram<u64>) -> String {
    let ms = |q: f64| (h.value_at_quantile(q) as f64) / 1000.0;
    format!(
        "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  ({} samples)",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        (h.max() as f64) / 1000.0,
        h.len()
    )
}

/// Prints the machine-readable result line (always the last line of a scenario).
pub fn emit(result: Value) {
    println!("RESULT {result}");
}
