//! `clarion-bench`: a load generator for any Pusher-compatible server.
//!
//! Each scenario prints human-readable lines and, last, one `RESULT {json}` line that
//! `benches/run.sh` collects into benches/results/latest.md (docs/performance.md explains the cases). One tokio runtime, at most one task per
//! connection, small WebSocket buffers: lean enough to share a 2-core machine with the server.

mod bus_counters;
mod client_events;
mod count_churn;
mod fanout;
mod history_memory;
mod http_client;
mod idle;
mod presence;
mod proc_stats;
mod publish;
mod raw_ws;
mod reconnect_storm;
mod recovering;
mod report;
mod restart_storm;
mod signin_storm;
mod soak;
mod stream;
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
    /// Connect with TLS (`wss://`, `https://`; the server's certificate is not checked, no
    /// session is resumed: every connection is a full handshake).
    #[arg(long, global = true)]
    tls: bool,
    /// The server's PID, to read its RSS and CPU time from /proc.
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// Another process whose CPU time is reported too (a second node, Redis): NAME=PID, or
    /// NAME=@FILE for a PID file that is re-read (a node restarted mid-run). Repeatable.
    #[arg(long, global = true, value_parser = proc_stats::parse_watched)]
    watch: Vec<proc_stats::Watched>,
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
        /// Subscribe with the recovery opt-in (`"clarion":{"v":1}`), so recorded channels send
        /// stamped frames.
        #[arg(long)]
        opt_in: bool,
        /// Channel names are this prefix and a number (e.g. one the app records).
        #[arg(long, default_value = "fanout-")]
        channel_prefix: String,
        /// Another node's port (repeat for more nodes): the subscribers are spread over the
        /// nodes round robin; publishing stays on the first.
        #[arg(long)]
        also_port: Vec<u16>,
        /// Put each channel's subscribers on every node (default: each channel on one node
        /// when the channel count is a multiple of the node count).
        #[arg(long)]
        spread_channels: bool,
        /// A node's metrics port (repeat per node): its bus messages received are reported.
        #[arg(long)]
        bus_metrics: Vec<u16>,
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
    /// Opted-in subscribers lose their connections at once and resubscribe from their
    /// positions: time to recover, recovered counts, gaps and duplicates, the node's cost.
    ReconnectStorm(reconnect_storm::Args),
    /// RSS growth per recorded channel and per stored event of memory history.
    HistoryMemory(history_memory::Args),
    /// Connections signing in with 100-id watchlists: sign-ins/s, sign-in → first
    /// watchlist_events latency.
    SigninStorm(signin_storm::Args),
    /// N connections (a third in presence channels) through a server restart, coming back
    /// as pusher-js does: time until all are subscribed again, peak RSS, member events.
    RestartStorm(restart_storm::Args),
    /// An hour (by default) of mixed load, sampled every minute: RSS, open fds, tasks, queued
    /// frames, lost events; the verdict is whether anything drifted or was lost.
    Soak(soak::Args),
    /// Subscribe/unsubscribe churn on a big channel: server CPU per operation and subscribe
    /// latency (with the app's subscription count on or off).
    CountChurn(count_churn::Args),
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
        /// Threads of the reader's runtime: 1 (the default) is a current-thread runtime; more
        /// is a multi-thread runtime with that many workers, as `fanout`'s subscribers run.
        #[arg(long, default_value_t = 1)]
        reader_threads: usize,
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
        tls: cli.tls,
    };
    let pid = cli.pid;
    let watched = cli.watch;
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
                opt_in,
                channel_prefix,
                also_port,
                spread_channels,
                bus_metrics,
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
                        opt_in,
                        channel_prefix,
                        also_port,
                        spread_channels,
                        bus_metrics,
                        watched,
                    },
                )
                .await
            }
            Scenario::ReconnectStorm(a) => reconnect_storm::run(t, a, pid, watched).await,
            Scenario::HistoryMemory(a) => history_memory::run(t, a, pid).await,
            Scenario::SigninStorm(a) => signin_storm::run(t, a, pid, watched).await,
            Scenario::RestartStorm(a) => restart_storm::run(t, a).await,
            Scenario::CountChurn(a) => count_churn::run(t, a, pid, watched).await,
            Scenario::Soak(a) => soak::run(t, a, pid).await,
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
                        watched,
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
                reader_threads,
            } => {
                let o = write_floor::WriteFloor {
                    sockets,
                    rate,
                    duration: Duration::from_secs(duration),
                    payload,
                    writers,
                    per_round,
                    congestion,
                    reader_threads,
                };
                if let Err(e) = write_floor::run(o) {
                    eprintln!("clarion-bench: write-floor: {e}");
                    std::process::exit(1);
                }
            }
        }
    });
}
