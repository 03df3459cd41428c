//! Reads the server's memory and CPU time from /proc, given its PID.

/// Resident set size in bytes (VmRSS).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Open file descriptors (entries of /proc/PID/fd): sockets, the listener, files.
pub fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// User + system CPU time in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    Some((utime + stime) / ticks)
}

/// A sample of the server's resources, when a PID was given.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub rss: Option<u64>,
    pub cpu: Option<f64>,
}

pub fn sample(pid: Option<u32>) -> Sample {
    Sample {
        rss: pid.and_then(rss_bytes),
        cpu: pid.and_then(cpu_seconds),
    }
}

/// A process measured besides the server under test (a second node, Redis): a fixed PID, or a
/// file that holds the current one, because a node that is restarted mid-scenario gets a new PID.
#[derive(Clone, Debug)]
pub enum Proc {
    Pid(u32),
    File(std::path::PathBuf),
}

impl Proc {
    /// The PID now (re-read from the file each time).
    pub fn pid(&self) -> Option<u32> {
        match self {
            Proc::Pid(p) => Some(*p),
            Proc::File(f) => std::fs::read_to_string(f).ok()?.trim().parse().ok(),
        }
    }
}

/// A named process from `--watch NAME=PID` or `--watch NAME=@PIDFILE`.
#[derive(Clone, Debug)]
pub struct Watched {
    pub name: String,
    pub proc: Proc,
}

/// Parses `NAME=PID` or `NAME=@PIDFILE` (for clap).
pub fn parse_watched(s: &str) -> Result<Watched, String> {
    let (name, what) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PID or NAME=@PIDFILE, got {s:?}"))?;
    let proc = match what.strip_prefix('@') {
        Some(file) => Proc::File(file.into()),
        None => Proc::Pid(what.parse().map_err(|e| format!("{what:?}: {e}"))?),
    };
    Ok(Watched {
        name: name.to_string(),
        proc,
    })
}

/// CPU seconds of every watched process at one moment, with the PID read.
pub struct CpuMark(Vec<(String, Option<u32>, Option<f64>)>);

pub fn mark(watched: &[Watched]) -> CpuMark {
    CpuMark(
        watched
            .iter()
            .map(|w| {
                let pid = w.proc.pid();
                (w.name.clone(), pid, pid.and_then(cpu_seconds))
            })
            .collect(),
    )
}

impl CpuMark {
    /// CPU seconds each process spent since `self`, by name. A process whose PID changed in
    /// between (restarted) counts from its start: the old process's last seconds are unknown.
    pub fn since(&self, later: &CpuMark) -> Vec<(String, Option<f64>)> {
        self.0
            .iter()
            .zip(&later.0)
            .map(|((name, pid0, cpu0), (_, pid1, cpu1))| {
                let d = match (cpu0, cpu1) {
                    (Some(a), Some(b)) if pid0 == pid1 => Some(b - a),
                    (_, Some(b)) => Some(*b),
                    _ => None,
                };
                (name.clone(), d)
            })
            .collect()
    }
}

/// `{"name": seconds, …}` for a RESULT line.
pub fn cpu_json(deltas: &[(String, Option<f64>)]) -> serde_json::Value {
    serde_json::Value::Object(
        deltas
            .iter()
            .map(|(n, d)| (n.clone(), serde_json::json!(d)))
            .collect(),
    )
}

/// The sum of the known deltas (none known: `None`).
pub fn cpu_total(deltas: &[(String, Option<f64>)]) -> Option<f64> {
    deltas.iter().filter_map(|(_, d)| *d).reduce(|a, b| a + b)
}

/// Peak resident set size (VmHWM) in bytes: the most the process ever held.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Polls a process's RSS every 50 ms until dropped and keeps the largest value: VmHWM covers the
/// process's whole life, so it cannot say what one phase of a scenario added.
pub struct RssPeak {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssPeak {
    pub fn start(proc: Proc) -> RssPeak {
        use std::sync::atomic::Ordering;
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(r) = proc.pid().and_then(rss_bytes) {
                    p.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
        RssPeak { peak, task }
    }

    /// The largest RSS seen so far (`None` when the process could never be read).
    pub fn peak(&self) -> Option<u64> {
        Some(self.peak.load(std::sync::atomic::Ordering::Relaxed)).filter(|&b| b > 0)
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.task.abort();
    }
}
