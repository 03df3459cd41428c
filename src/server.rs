//! Accepts TCP connections and serves HTTP/1.1 (API, health, WebSocket upgrades) on one port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::adapter::local::LocalAdapter;
use crate::adapter::redis::RedisAdapter;
use crate::adapter::Adapter;
use crate::coalesce_101::Coalesce101;
use crate::config::Config;
use crate::open_sockets::Counted;
use crate::protocol::codes;
use crate::state::State;

/// Largest request head (request line and headers) hyper buffers; bigger ones get 431. Browsers
/// send a few KB at most, cookies included; the bound keeps a flood of huge heads cheap.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// The TCP peer of a request, put in its extensions for the per-address connection limit.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
}

impl Server {
    /// Binds the configured address with the configured adapter (`local` or `redis`).
    pub async fn bind(config: Config) -> std::io::Result<Server> {
        let adapter: Arc<dyn Adapter> = if config.adapter == "redis" {
            RedisAdapter::start(&config.redis_url, &config.redis_prefix)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
        } else {
            let local = LocalAdapter::new();
            local.spawn_sweeper();
            local
        };
        Server::bind_with_adapter(config, adapter).await
    }

    /// Binds the configured address with a given adapter.
    pub async fn bind_with_adapter(
        config: Config,
        adapter: Arc<dyn Adapter>,
    ) -> std::io::Result<Server> {
        let apps = config
            .registry()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener =
            crate::listener::bind(&config.host, config.port, config.listen_backlog).await?;
        let state = Arc::new(State::new(config, apps, adapter));
        // Events a cluster adapter discovers by itself (a dead node's members) reach webhooks.
        let weak = Arc::downgrade(&state);
        state.adapter.set_event_sink(Arc::new(move |app_id, event| {
            if let Some(state) = weak.upgrade() {
                if let Some(app) = state.apps().by_id(app_id).cloned() {
                    state.webhooks.emit(&app, event);
                }
            }
        }));
        if state.config.metrics_port != 0 {
            let addr = (state.config.host.as_str(), state.config.metrics_port);
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(port = state.config.metrics_port, "metrics on /metrics");
                    tokio::spawn(crate::metrics::serve(l, state.clone()));
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

    /// Serves until `shutdown` completes.
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
                        let stream = Counted::new(stream, self.state.open_sockets.clone());
                        let state = self.state.clone();
                        match &self.state.tls {
                            Some(tls) => {
                                let acceptor = tls.acceptor();
                                let limit = Duration::from_secs(state.config.handshake_timeout);
                                tokio::spawn(async move {
                                    // A client that never finishes the handshake is dropped.
                                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                                        Ok(Ok(tls_stream)) => serve_connection(state, tls_stream, peer).await,
                                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                        Err(_) => tracing::debug!("TLS handshake timed out"),
                                    }
                                });
                            }
                            None => {
                                tokio::spawn(serve_connection(state, stream, peer));
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

/// Applies a new app list (SIGHUP): connections of unchanged apps stay; those of apps that
/// were removed, disabled or re-keyed are closed with the code a new connection would get.
pub fn reload_apps(state: &State, apps: crate::app::AppRegistry) {
    let old = state.apps();
    state.set_apps(apps);
    let new = state.apps();
    for app in old.iter() {
        match new.by_id(&app.id) {
            None => {
                state
                    .adapter
                    .close_app(&app.id, codes::APP_NOT_FOUND, "Application does not exist")
            }
            Some(n) if !n.enabled => {
                state
                    .adapter
                    .close_app(&app.id, codes::APP_DISABLED, "Application is disabled")
            }
            Some(n) if n.key != app.key => {
                state
                    .adapter
                    .close_app(&app.id, codes::APP_NOT_FOUND, "Application key changed")
            }
            Some(_) => {}
        }
    }
    tracing::info!(apps = new.len(), "configuration reloaded: apps updated");
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
    state
        .adapter
        .close_all(crate::protocol::codes::RECONNECT, "Server shutting down");
    state.webhooks.flush_now();
    let work = async {
        loop {
            if state.adapter.local_connections() == 0 && state.webhooks.pending() == 0 {
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
                connections = state.adapter.local_connections(),
                webhooks = state.webhooks.pending(),
                "grace period over; exiting with work left"
            );
        }
        () = accept => {}
    }
    state.adapter.leave_cluster().await;
}

/// Serves HTTP/1.1 on one connection. `handshake_timeout` bounds each request head — from the
/// moment the server starts waiting for it, so a silent connection, a slowloris dribbling bytes
/// and an idle keep-alive connection are all closed after it.
async fn serve_connection<S>(state: Arc<State>, stream: S, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let head_timeout = Duration::from_secs(state.config.handshake_timeout);
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let state = state.clone();
        req.extensions_mut().insert(Peer(peer));
        async move { Ok::<_, std::convert::Infallible>(crate::http::route(state, req).await) }
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
