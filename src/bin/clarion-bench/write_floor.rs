//! `write-floor`: what the kernel alone charges for a broadcast, with no server at all.
//!
//! A server that delivers one message to each of N sockets makes at least one `write` per
//! socket, and on loopback that write also runs the receiving side's TCP stack and wakes the
//! reader, all charged to the writer. This scenario measures that floor on this machine: it opens
//! N loopback connections inside this process, a reader thread drains them (a current-thread
//! tokio runtime with one task per socket; `fanout` reads its subscribers on the multi-thread
//! runtime, which `--reader-threads` reproduces), and writer threads send one WebSocket-framed
//! message to every socket, R rounds per second, with plain blocking `write` calls and nothing
//! else.
//! The writers' CPU per million writes is the least any server can spend per delivery here when
//! each message goes out alone; a round's time to the last byte is the least fan-out latency.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncReadExt;

use crate::report;

pub struct WriteFloor {
    pub sockets: usize,
    pub rate: f64,
    pub duration: Duration,
    pub payload: usize,
    pub writers: usize,
    /// Sockets written per round (default: all of them).
    pub per_round: Option<usize>,
    /// TCP congestion control of the writing sockets (default: the system's).
    pub congestion: Option<String>,
    /// Worker threads of the reader's runtime (1: a current-thread runtime).
    pub reader_threads: usize,
}

pub fn run(o: WriteFloor) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut server_side = Vec::with_capacity(o.sockets);
    let mut client_side = Vec::with_capacity(o.sockets);
    for _ in 0..o.sockets {
        let c = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        let (s, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        if let Some(cc) = &o.congestion {
            set_congestion(&s, cc)?;
        }
        c.set_nonblocking(true).map_err(|e| e.to_string())?;
        server_side.push(s);
        client_side.push(c);
    }
    let frame = ws_text_frame(o.payload);
    let rounds = (o.rate * o.duration.as_secs_f64()).round().max(1.0) as u64;
    let writers = o.writers.clamp(1, o.sockets.max(1));
    let chunk = o.sockets.div_ceil(writers);
    let mut groups: Vec<Vec<TcpStream>> = Vec::new();
    let mut rest = server_side;
    while !rest.is_empty() {
        let tail = rest.split_off(chunk.min(rest.len()));
        groups.push(std::mem::replace(&mut rest, tail));
    }
    // Sockets each writer writes per round (a rotating window of its group when a round is
    // smaller than all the sockets, as one channel of many is).
    let per_writer = o.per_round.unwrap_or(o.sockets).div_ceil(writers).max(1);
    let per_round: usize = groups.iter().map(|g| per_writer.min(g.len())).sum();
    let clock = Arc::new(RoundClock {
        base: Instant::now(),
        round_bytes: (per_round * frame.len()) as u64,
        received: AtomicU64::new(0),
        started: (0..rounds).map(|_| AtomicU64::new(0)).collect(),
        done: std::sync::Mutex::new(Vec::with_capacity(rounds as usize)),
    });
    start_reader(client_side, clock.clone(), o.reader_threads)?;

    // Each writer thread writes its share of every round when told to, and reports its CPU.
    let mut go = Vec::new();
    let mut handles = Vec::new();
    for mut group in groups {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        go.push(tx);
        let frame = frame.clone();
        handles.push(std::thread::spawn(move || {
            let before = thread_cpu();
            let mut errors = 0u64;
            let window = per_writer.min(group.len());
            let mut next = 0;
            while rx.recv().is_ok() {
                for _ in 0..window {
                    if let Some(s) = group.get_mut(next) {
                        if s.write_all(&frame).is_err() {
                            errors += 1;
                        }
                    }
                    next = (next + 1) % group.len();
                }
            }
            (before, thread_cpu(), errors)
        }));
    }
    let period = Duration::from_secs_f64(1.0 / o.rate.max(0.001));
    let started = Instant::now();
    for (r, start) in clock.started.iter().enumerate() {
        let due = started + period * r as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        start.store(clock.micros(), Ordering::Release);
        for tx in &go {
            let _ = tx.send(());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while clock.received.load(Ordering::Relaxed) < clock.round_bytes * rounds
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(go);
    let (mut cpu, mut errors) = (0.0, 0u64);
    for h in handles {
        let (before, after, e) = h.join().map_err(|_| "writer thread panicked")?;
        cpu += after - before;
        errors += e;
    }
    let writes = rounds * per_round as u64;
    let per_million = cpu / (writes as f64 / 1e6);
    let mut round_ms = match clock.done.lock() {
        Ok(d) => d.clone(),
        Err(p) => p.into_inner().clone(),
    };
    let incomplete = rounds - round_ms.len() as u64;
    round_ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        let i = ((round_ms.len() as f64 - 1.0) * p).round() as usize;
        round_ms.get(i).copied().unwrap_or(0.0)
    };
    println!(
        "write-floor: {} sockets, {} rounds of one {}-byte frame to each of {} sockets, {} writer thread(s), {} write errors",
        o.sockets,
        rounds,
        frame.len(),
        per_round,
        writers,
        errors
    );
    println!("write-floor: writer CPU {per_million:.2} CPU-s per million writes");
    println!(
        "write-floor: round to last byte ms: p50 {:.2}  p99 {:.2}  max {:.2}  ({incomplete} rounds incomplete)",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    report::emit(json!({
        "scenario": "write-floor",
        "sockets": o.sockets,
        "rounds": rounds,
        "per_round": per_round,
        "frame_bytes": frame.len(),
        "writers": writers,
        "reader_threads": o.reader_threads.max(1),
        "write_errors": errors,
        "cpu_seconds_per_million": per_million,
        "incomplete_rounds": incomplete,
        "round_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
    }));
    Ok(())
}

/// Sets a socket's TCP congestion control (`cubic`, `reno`, `bbr`, … as the kernel offers).
fn set_congestion(s: &TcpStream, name: &str) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "TCP_CONGESTION {name}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// An unmasked WebSocket text frame (server to client) with `payload` bytes of JSON-ish text.
fn ws_text_frame(payload: usize) -> Vec<u8> {
    let body = format!(
        "{{\"event\":\"bench\",\"channel\":\"fanout-0\",\"data\":\"{}\"}}",
        "x".repeat(payload.saturating_sub(45))
    );
    let mut f = vec![0x81u8];
    match body.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(body.as_bytes());
    f
}

/// When each round started and when its last byte arrived.
struct RoundClock {
    base: Instant,
    round_bytes: u64,
    received: AtomicU64,
    /// Start of round r in microseconds since `base` (plus one, so 0 means not started).
    started: Vec<AtomicU64>,
    /// Milliseconds from start to last byte, per completed round.
    done: std::sync::Mutex<Vec<f64>>,
}

impl RoundClock {
    fn micros(&self) -> u64 {
        self.base.elapsed().as_micros() as u64 + 1
    }

    /// Counts `n` received bytes; the reader that completes a round records its time.
    fn add(&self, n: u64) {
        let before = self.received.fetch_add(n, Ordering::Relaxed);
        let (from, to) = (before / self.round_bytes, (before + n) / self.round_bytes);
        for r in from..to {
            let start = self
                .started
                .get(r as usize)
                .map_or(0, |s| s.load(Ordering::Acquire));
            if start > 0 {
                let ms = self.micros().saturating_sub(start) as f64 / 1e3;
                if let Ok(mut d) = self.done.lock() {
                    d.push(ms);
                }
            }
        }
    }
}

/// Drains every client socket, counting bytes: on one thread (a current-thread runtime), or
/// on a multi-thread runtime of `threads` workers (how `fanout`'s subscribers are read, whose
/// wake-up pattern the writers pay for; `--reader-threads`).
fn start_reader(
    sockets: Vec<TcpStream>,
    clock: Arc<RoundClock>,
    threads: usize,
) -> Result<(), String> {
    let rt = if threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_io()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    }
    .map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            let mut tasks = Vec::with_capacity(sockets.len());
            for s in sockets {
                let Ok(mut s) = tokio::net::TcpStream::from_std(s) else {
                    continue;
                };
                let clock = clock.clone();
                tasks.push(tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        clock.add(n as u64);
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        });
    });
    Ok(())
}

/// This thread's user + system CPU seconds, from /proc/thread-self/stat.
fn thread_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .get(close + 2..)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) / ticks
}
