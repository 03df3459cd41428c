//! Accepts TCP connections and serves HTTP/1.1 (API, health, WebSocket upgrades) on one port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use tokio::sync::mpsc;

use crate::adapter::redis::RedisAdapter;
use crate::adapter::{Adapter, ClusterEvent, LocalAdapter};
use crate::app_store::{AppStore, Dialect};
use crate::channels::direct::SocketFd;
use crate::config::{Config, Validated};
use crate::metrics::Metrics;
use crate::net::coalesce_101::Coalesce101;
use crate::net::open_sockets::Counted;
use crate::net::tls_stream;
use crate::protocol::codes::Fatal;
use crate::state::State;
use crate::webhooks::Event;
use std::os::fd::AsRawFd;

/// Largest request head (request line and headers) hyper buffers; bigger ones get 431. Browsers
/// send a few KB at most, cookies included; the bound keeps a flood of huge heads cheap.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Why a server could not start; each names its cause, so a bad `redis_url` is not reported
/// as a port that cannot be bound.
#[derive(Debug)]
pub enum StartError {
    /// The configuration is invalid (the message names the key).
    Config(String),
    /// The cluster adapter cannot be used with its settings.
    Adapter(String),
    /// The listening socket could not be opened.
    Bind { addr: String, error: std::io::Error },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "configuration error: {e}"),
            StartError::Adapter(e) => write!(f, "cannot start the cluster adapter: {e}"),
            StartError::Bind { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
}

impl Server {
    /// Validates `config`, then starts as [`Server::start`] does.
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        Server::start(config.validate().map_err(StartError::Config)?).await
    }

    /// Starts the configured adapter (`local` or `redis`), binds the configured address and
    /// the metrics port. Nothing is served until `run`.
    pub async fn start(checked: Validated) -> Result<Server, StartError> {
        let config = &checked.config;
        // The prefix was validated with the config; a failure here is still an error, not a
        // panic.
        let metrics = Metrics::new(&config.metrics_prefix)
            .map_err(|e| StartError::Config(format!("metrics_prefix: {e}")))?;
        let (events, cluster_events) = mpsc::unbounded_channel();
        let adapter: Arc<dyn Adapter> = if let Some(redis) = &checked.redis {
            if redis.insecure {
                tracing::warn!(
                    redis = %redis.shown,
                    "redis_tls_insecure is on: the Redis server's certificate is NOT verified; anyone on the path can read and change the cluster's traffic"
                );
            }
            RedisAdapter::check_access(&redis.servers, &config.redis_prefix)
                .await
                .map_err(|e| StartError::Adapter(format!("redis ({}): {e}", redis.shown)))?;
            RedisAdapter::start(&redis.servers, &config.redis_prefix, events)
                .map_err(|e| StartError::Adapter(format!("redis_url: {e}")))?
        } else {
            let local = LocalAdapter::with_history_limit(config.max_history_memory);
            local.spawn_sweeper();
            local
        };
        let listener = crate::net::listener::bind(&config.host, config.port, config.listen_backlog)
            .await
            .map_err(|error| StartError::Bind {
                addr: format!("{}:{}", config.host, config.port),
                error,
            })?;
        let store = match config.app_store.as_str() {
            "postgres" => Some(AppStore::new(
                Dialect::Postgres,
                &config.app_store_url,
                &config.app_store_table,
            )),
            "mysql" => Some(AppStore::new(
                Dialect::Mysql,
                &config.app_store_url,
                &config.app_store_table,
            )),
            _ => None,
        }
        .transpose()
        .map_err(StartError::Config)?;
        let mut state = State::new(checked, metrics, adapter);
        state.app_store = store.map(Arc::new);
        let state = Arc::new(state);
        if let Some(store) = &state.app_store {
            if store.dialect() == Dialect::Postgres {
                crate::app_store::listen::spawn(
                    state.config.app_store_url.clone(),
                    Arc::downgrade(&state.app_store_kick),
                );
            }
            let every = Duration::from_secs(state.config.app_store_poll_seconds);
            tokio::spawn(poll_app_store(
                Arc::downgrade(&state),
                store.clone(),
                state.app_store_kick.clone(),
                every,
            ));
        }
        if state.config.admin_port != 0 {
            let addr = format!("{}:{}", state.config.host, state.config.admin_port);
            let admin = TcpListener::bind(&addr)
                .await
                .map_err(|error| StartError::Bind { addr, error })?;
            tracing::info!(port = state.config.admin_port, "admin API on its own port");
            tokio::spawn(crate::http::admin::serve(admin, state.clone()));
        }
        tokio::spawn(forward_cluster_events(
            Arc::downgrade(&state),
            cluster_events,
        ));
        if state.config.metrics_port != 0 {
            let addr = (state.config.host.as_str(), state.config.metrics_port);
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(port = state.config.metrics_port, "metrics on /metrics");
                    tokio::spawn(crate::http::metrics::serve(l, state.clone()));
                }
                // Metrics are an aid, not the service: a taken port is logged, not fatal.
                Err(e) => tracing::error!(
                    port = state.config.metrics_port,
                    error = %e,
                    "cannot listen for metrics; continuing without /metrics"
                ),
            }
        }
        Ok(Server { listener, state })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> Arc<State> {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then drains: `/ready` answers 503, new WebSocket
    /// connections are refused, every connection is closed with 4200 (pusher-js reconnects at
    /// once, to another node behind a load balancer), held-back webhooks are sent, and this
    /// returns when all is done or `shutdown_grace_seconds` have passed.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let state = self.state.clone();
        let accept = self.accept_loop();
        tokio::pin!(accept);
        tokio::select! {
            () = &mut shutdown => {}
            () = &mut accept => return,
        }
        drain(&state, accept).await;
    }

    /// Accepts connections until dropped.
    async fn accept_loop(self) {
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        let fd = SocketFd(stream.as_raw_fd());
                        let stream = Counted::new(stream, self.state.open_sockets.clone());
                        let state = self.state.clone();
                        match &self.state.tls {
                            Some(tls) => {
                                let config = tls.config();
                                let limit = Duration::from_secs(state.config.handshake_timeout);
                                tokio::spawn(async move {
                                    // A client that never finishes the handshake is dropped.
                                    match tokio::time::timeout(limit, tls_stream::accept(config, stream)).await {
                                        Ok(Ok(tls_stream)) => serve_connection(state, tls_stream, peer, None).await,
                                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                        Err(_) => tracing::debug!("TLS handshake timed out"),
                                    }
                                });
                            }
                            None => {
                                // Only handed on when used: the request's extension map is
                                // an allocation of its own.
                                let fd = state.config.direct_writes.then_some(fd);
                                tokio::spawn(serve_connection(state, stream, peer, fd));
                            }
                        }
                    }
                    Err(e) => {
                        // Typically EMFILE: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    /// Serves forever.
    pub async fn run(self) {
        self.run_until(std::future::pending()).await
    }
}

/// Turns what a cluster adapter discovers on its own (a dead node's members and channels) into
/// webhooks, for as long as the server lives.
async fn forward_cluster_events(
    state: Weak<State>,
    mut events: mpsc::UnboundedReceiver<(String, ClusterEvent)>,
) {
    while let Some((app_id, event)) = events.recv().await {
        let Some(state) = state.upgrade() else {
            return;
        };
        if matches!(event, ClusterEvent::AppsChanged) {
            state.app_store_kick.notify_one();
            continue;
        }
        let Some(app) = state.apps().by_id(&app_id).cloned() else {
            continue;
        };
        let hook = match event {
            ClusterEvent::MemberRemoved { channel, user_id } => {
                Event::member_removed(&channel, &user_id)
            }
            ClusterEvent::ChannelVacated { channel } => Event::channel_vacated(&channel),
            ClusterEvent::AppsChanged => continue,
        };
        state.webhooks.emit(&app, hook);
    }
}

/// Applies a new app list (SIGHUP, the app store): see `State::apply_apps`.
pub fn reload_apps(state: &State, apps: crate::app::AppRegistry) {
    state.apply_apps(apps);
}

/// Reads the app store's table now and then, and applies it (as SIGHUP applies the file) when
/// it changed. Until the first read succeeds it retries every second and `/ready` says 503;
/// afterwards a failed read keeps the apps last read, raises `app_store_unreachable` and logs
/// (on the change, then every 30 s).
async fn poll_app_store(
    state: std::sync::Weak<State>,
    store: Arc<AppStore>,
    kick: Arc<tokio::sync::Notify>,
    every: Duration,
) {
    let mut applied: Option<u64> = None;
    let mut failing_since: Option<std::time::Instant> = None;
    let mut last_log: Option<std::time::Instant> = None;
    loop {
        let Some(state) = state.upgrade() else {
            return;
        };
        match store.load().await {
            Ok(snapshot) => {
                state.metrics.app_store_unreachable.set(0);
                if failing_since.take().is_some() {
                    tracing::info!("app store readable again");
                }
                let fingerprint = snapshot.fingerprint();
                if applied != Some(fingerprint) {
                    for why in &snapshot.skipped {
                        tracing::warn!(problem = %why, "app store: a row was left out");
                    }
                    match crate::app::AppRegistry::new(snapshot.apps) {
                        Ok(apps) => {
                            reload_apps(&state, apps);
                            state
                                .apps_loaded
                                .store(true, std::sync::atomic::Ordering::Relaxed);
                            applied = Some(fingerprint);
                        }
                        Err(e) => tracing::error!(
                            error = %e,
                            "app store: the table's apps do not fit together; keeping the current ones"
                        ),
                    }
                }
            }
            Err(e) => {
                state.metrics.app_store_unreachable.set(1);
                let now = std::time::Instant::now();
                failing_since.get_or_insert(now);
                if last_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(30)) {
                    last_log = Some(now);
                    tracing::warn!(error = %e, "app store unreadable; serving the apps last read");
                }
            }
        }
        let loaded = applied.is_some();
        drop(state);
        let wait = if loaded {
            every
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = kick.notified() => {}
        }
    }
}

/// The graceful part of a shutdown; the accept loop keeps running meanwhile so that health
/// checks see `/ready` go to 503.
async fn drain(state: &Arc<State>, accept: impl Future<Output = ()>) {
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let grace = Duration::from_secs(state.config.shutdown_grace_seconds);
    tracing::info!(
        grace_seconds = grace.as_secs(),
        "draining: closing connections with 4200"
    );
    state.adapter.local().close_all(Fatal::ShuttingDown);
    state.webhooks.flush_now();
    let work = async {
        loop {
            if state.adapter.local().connections() == 0 && state.webhooks.pending() == 0 {
                return;
            }
            state.webhooks.flush_now();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        () = work => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(
                connections = state.adapter.local().connections(),
                webhooks = state.webhooks.pending(),
                "grace period over; exiting with work left"
            );
        }
        () = accept => {}
    }
    if let Some(cluster) = state.adapter.cluster() {
        cluster.leave().await;
    }
}

/// Serves HTTP/1.1 on one connection. `handshake_timeout` bounds each request head — from the
/// moment the server starts waiting for it, so a silent connection, a slowloris dribbling bytes
/// and an idle keep-alive connection are all closed after it.
///
/// `fd` is the plain TCP socket's descriptor (none on TLS): a WebSocket upgrade hands it to the
/// connection, whose broadcasters may then write to an idle socket themselves
/// (`channels::direct`).
async fn serve_connection<S>(state: Arc<State>, stream: S, peer: SocketAddr, fd: Option<SocketFd>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let head_timeout = Duration::from_secs(state.config.handshake_timeout);
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        if let Some(fd) = fd {
            req.extensions_mut().insert(fd);
        }
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(crate::http::route(state, req, peer).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(Coalesce101::new(stream)), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}
