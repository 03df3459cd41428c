//! The soak's samples and its verdict: after the warm-up, the server's RSS and open files stay
//! within a tolerance of their own minimum (max/min over the window), and nothing is lost.
//!
//! Max/min rather than a slope: an hour of mixed load is noisy (churn, slow consumers come and
//! go), and a leak worth finding moves the maximum well past the minimum long before a fitted
//! trend is trustworthy. The warm-up is excluded because allocator pools and socket buffers
//! grow to the load's working size first.

use serde::Serialize;

/// One sample, taken every `--sample-every` seconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub t: f64,
    pub rss: Option<u64>,
    pub fds: Option<u64>,
    /// `clarion_runtime_tasks` and `clarion_queued_frames` from the server's /metrics.
    pub tasks: Option<u64>,
    pub queued_frames: Option<u64>,
    /// Connections the server counts (`clarion_connected`) and the ones this client holds.
    pub server_connections: Option<u64>,
    pub connections: u64,
    pub events_sent: u64,
    pub client_events_sent: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub slow_opened: u64,
    pub slow_closed_4100: u64,
    /// Server and load-generator CPU over the last interval, in % of one core.
    pub server_cpu_pct: Option<f64>,
    pub bench_cpu_pct: Option<f64>,
}

/// The outcome of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// Samples at or after the warm-up.
    pub window_samples: usize,
    /// max/min - 1 over the window (`None`: fewer than two readings).
    pub rss_drift: Option<f64>,
    pub fds_drift: Option<f64>,
    pub tolerance: f64,
    pub lost: u64,
    pub pass: bool,
    /// Why it did not pass (empty when it did).
    pub reasons: Vec<String>,
}

/// max/min - 1 of the readings taken at or after `warmup` seconds.
pub fn drift(readings: &[(f64, Option<u64>)], warmup: f64) -> Option<f64> {
    let window: Vec<u64> = readings
        .iter()
        .filter(|(t, _)| *t >= warmup)
        .filter_map(|(_, v)| *v)
        .collect();
    if window.len() < 2 {
        return None;
    }
    let min = *window.iter().min()?;
    let max = *window.iter().max()?;
    if min == 0 {
        return None;
    }
    Some(max as f64 / min as f64 - 1.0)
}

/// Judges a run: RSS and fds within `tolerance` after `warmup`, and `lost` == 0.
pub fn judge(samples: &[Sample], warmup: f64, tolerance: f64, lost: u64) -> Verdict {
    let rss: Vec<_> = samples.iter().map(|s| (s.t, s.rss)).collect();
    let fds: Vec<_> = samples.iter().map(|s| (s.t, s.fds)).collect();
    let rss_drift = drift(&rss, warmup);
    let fds_drift = drift(&fds, warmup);
    let mut reasons = Vec::new();
    for (name, d) in [("RSS", rss_drift), ("open fds", fds_drift)] {
        match d {
            None => reasons.push(format!(
                "{name}: fewer than two samples after the warm-up (no --pid, or a run too short)"
            )),
            Some(d) if d > tolerance => reasons.push(format!(
                "{name} moved {:.1}% (max/min) after the warm-up, over {:.0}%",
                d * 100.0,
                tolerance * 100.0
            )),
            Some(_) => {}
        }
    }
    if lost > 0 {
        reasons.push(format!("{lost} events lost"));
    }
    Verdict {
        window_samples: samples.iter().filter(|s| s.t >= warmup).count(),
        rss_drift,
        fds_drift,
        tolerance,
        lost,
        pass: reasons.is_empty(),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(points: &[(f64, u64, u64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(t, rss, fds)| Sample {
                t,
                rss: Some(rss),
                fds: Some(fds),
                ..Sample::default()
            })
            .collect()
    }

    #[test]
    fn growth_during_the_warm_up_does_not_count() {
        // RSS doubles in the first five minutes, then holds within 2%.
        let s = samples(&[
            (60.0, 50, 1000),
            (300.0, 100, 1010),
            (600.0, 101, 1005),
            (900.0, 102, 1010),
        ]);
        let v = judge(&s, 300.0, 0.05, 0);
        assert!(v.pass, "{v:?}");
        assert_eq!(v.window_samples, 3);
        assert!((v.rss_drift.unwrap_or(1.0) - 0.02).abs() < 1e-9);
    }

    #[test]
    fn a_steady_climb_past_the_tolerance_fails() {
        let s = samples(&[(300.0, 100, 1000), (600.0, 103, 1000), (900.0, 106, 1000)]);
        let v = judge(&s, 300.0, 0.05, 0);
        assert!(!v.pass);
        assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
        assert!(v.reasons[0].starts_with("RSS"), "{:?}", v.reasons);
        // fds too.
        let s = samples(&[(300.0, 100, 1000), (600.0, 100, 1100)]);
        assert!(!judge(&s, 300.0, 0.05, 0).pass);
    }

    #[test]
    fn any_loss_fails_even_when_memory_is_flat() {
        let s = samples(&[(300.0, 100, 1000), (600.0, 100, 1000)]);
        let v = judge(&s, 300.0, 0.05, 1);
        assert!(!v.pass);
        assert_eq!(v.reasons, vec!["1 events lost".to_string()]);
    }

    #[test]
    fn too_few_samples_in_the_window_is_not_a_pass() {
        let s = samples(&[(60.0, 100, 1000), (300.0, 100, 1000)]);
        let v = judge(&s, 300.0, 0.05, 0);
        assert!(!v.pass);
        assert_eq!(v.rss_drift, None);
        // Missing readings (no --pid) are skipped, not read as zero.
        let mut s = samples(&[(300.0, 100, 1000), (600.0, 100, 1000)]);
        s[1].rss = None;
        assert_eq!(drift(&[(300.0, Some(10)), (600.0, None)], 0.0), None);
        assert!(!judge(&s, 0.0, 0.05, 0).pass);
    }
}
