//! `clarion-bench`: a load generator for any Pusher-compatible server.
//!
//! Each scenario prints human-readable lines and, last, one `RESULT {json}` line that
//! `benches/run.sh` collects into benches/results/latest.md (docs/performance.md explains the cases). One tokio runtime, at most one task per
//! connection, small WebSocket buffers: lean enough to share a 2-core machine with the server.

mod client_events;
mod fanout;
mod http_client;
mod idle;
mod presence;
mod proc_stats;
mod raw_ws;
mod report;
mod target;
mod trigger;
mod write_floor;
mod ws_client;

use std::time::Duration;

use clap::{Parser, Subcommand};

/// Load generator for Pusher-protocol servers (Clarion, Soketi, Reverb, sockudo, …).
#[derive(Parser, Debug)]
#[command(name = "clarion-bench", version)]
struct Cli {
    /// Server host (IP or name).
    #[arg(long, default_value = "127.0.0.1", global = true)]
    host: String,
    /// Server port (WebSocket and HTTP API).
    #[arg(long, default_value_t = 6001, global = true)]
    port: u16,
    /// App id for the HTTP API.
    #[arg(long, default_value = "app-id", global = true)]
    app_id: String,
    /// App key.
    #[arg(long, default_value = "app-key", global = true)]
    key: String,
    /// App secret (signs HTTP requests and channel auth).
    #[arg(long, default_value = "app-secret", global = true)]
    secret: String,
    /// The server's PID, to read its RSS and CPU time from /proc.
    #[arg(long, global = true)]
    pid: Option<u32>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Open N subscribed connections; report connect rate, failures and RSS per connection.
    Idle {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        #[arg(long, default_value_t = 100)]
        channels: usize,
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// Spread connections over 127.0.0.1..=127.0.0.N.
        #[arg(long, default_value_t = 1)]
        source_ips: usize,
        /// Seconds to keep the connections open after measuring.
        #[arg(long, default_value_t = 0)]
        hold: u64,
    },
    /// S subscribers over C channels, R events/s published over HTTP; latency, loss, CPU.
    Fanout {
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        #[arg(long, default_value_t = 1)]
        channels: usize,
        /// Events per second (over all channels).
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Seconds of publishing.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Approximate bytes of event data.
        #[arg(long, default_value_t = 100)]
        payload: usize,
        /// Concurrent HTTP publishers.
        #[arg(long, default_value_t = 4)]
        publishers: usize,
        #[arg(long, default_value_t = 1)]
        source_ips: usize,
    },
    /// HTTP trigger throughput at concurrency K.
    Trigger {
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Channel to trigger on (nobody subscribed by default).
        #[arg(long, default_value = "bench-nobody")]
        channel: String,
    },
    /// Presence join/leave latency and join rate.
    Presence {
        /// Sequential join+leave samples for the latency figures.
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Members joining at once for the join rate.
        #[arg(long, default_value_t = 1000)]
        joiners: usize,
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
    },
    /// Whispers between pairs of connections on private channels.
    ClientEvents {
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Whispers per second per pair.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// No server: the kernel's own cost of writing one message to each of N loopback sockets
    /// (the floor under any server's fan-out on this machine).
    WriteFloor {
        /// Loopback connections (each takes two open files in this process).
        #[arg(long, default_value_t = 9_900)]
        sockets: usize,
        /// Rounds (one message to every socket) per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Bytes of the JSON text in each frame.
        #[arg(long, default_value_t = 150)]
        payload: usize,
        /// Writer threads sharing the sockets.
        #[arg(long, default_value_t = 1)]
        writers: usize,
        /// Sockets written per round, a rotating window (default: every socket), like one
        /// channel of many.
        #[arg(long)]
        per_round: Option<usize>,
        /// TCP congestion control of the writing sockets (default: the system's).
        #[arg(long)]
        congestion: Option<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clarion-bench: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let t = target::Target {
        host: cli.host,
        port: cli.port,
        app_id: cli.app_id,
        key: cli.key,
        secret: cli.secret,
    };
    let pid = cli.pid;
    runtime.block_on(async move {
        match cli.scenario {
            Scenario::Idle {
                connections,
                channels,
                concurrency,
                source_ips,
                hold,
            } => {
                idle::run(
                    t,
                    idle::Idle {
                        connections,
                        channels,
                        concurrency,
                        source_ips,
                        hold: Duration::from_secs(hold),
                        pid,
                    },
                )
                .await
            }
            Scenario::Fanout {
                subscribers,
                channels,
                rate,
                duration,
                payload,
                publishers,
                source_ips,
            } => {
                fanout::run(
                    t,
                    fanout::Fanout {
                        subscribers,
                        channels,
                        rate,
                        duration: Duration::from_secs(duration),
                        payload,
                        publishers,
                        source_ips,
                        pid,
                    },
                )
                .await
            }
            Scenario::Trigger {
                concurrency,
                duration,
                channel,
            } => {
                trigger::run(
                    t,
                    trigger::Trigger {
                        concurrency,
                        duration: Duration::from_secs(duration),
                        channel,
                        pid,
                    },
                )
                .await
            }
            Scenario::Presence {
                samples,
                joiners,
                concurrency,
            } => {
                presence::run(
                    t,
                    presence::Presence {
                        samples,
                        joiners,
                        concurrency,
                    },
                )
                .await
            }
            Scenario::ClientEvents {
                pairs,
                rate,
                duration,
            } => {
                client_events::run(
                    t,
                    client_events::ClientEvents {
                        pairs,
                        rate,
                        duration: Duration::from_secs(duration),
                    },
                )
                .await
            }
            Scenario::WriteFloor {
                sockets,
                rate,
                duration,
                payload,
                writers,
                per_round,
                congestion,
            } => {
                let o = write_floor::WriteFloor {
                    sockets,
                    rate,
                    duration: Duration::from_secs(duration),
                    payload,
                    writers,
                    per_round,
                    congestion,
                };
                if let Err(e) = write_floor::run(o) {
                    eprintln!("clarion-bench: write-floor: {e}");
                    std::process::exit(1);
                }
            }
        }
    });
}
