//! The event loop of one connection: one task that reads frames, writes its queue, and keeps
//! the activity timer. One task (not a reader and a writer) keeps the per-connection cost low.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::session::Session;
use crate::channels::direct::{self, CountSent, Socket, SocketFd};
use crate::channels::handle::{ConnHandle, Outbound, Receiver};
use crate::metrics::ConnCounters;
use crate::protocol::codes::{self, Fatal};
use crate::protocol::frames;
use crate::protocol::socket_id::SocketId;
use crate::state::State;

/// Frames written per flush at most, so one busy connection cannot starve its own reads.
const WRITE_BATCH: usize = 64;
/// How long a close handshake may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Protocol versions accepted in `?protocol=` (Pysher sends 6; a missing value means 7).
fn protocol_supported(p: Option<&str>) -> bool {
    match p {
        None => true,
        Some(v) => matches!(v.parse::<u8>(), Ok(5..=7)),
    }
}

/// Runs a freshly upgraded connection to its end.
pub async fn run<S>(
    state: Arc<State>,
    mut ws: WebSocketStream<S>,
    app_key: String,
    protocol: Option<String>,
    origin: Option<String>,
    socket: Option<SocketFd>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let apps = state.apps();
    let Some(app) = apps.by_key(&app_key).cloned() else {
        return fatal(&mut ws, Fatal::AppNotFound).await;
    };
    if !app.enabled {
        return fatal(&mut ws, Fatal::AppDisabled).await;
    }
    if !app.allows_origin(origin.as_deref()) {
        return fatal(&mut ws, Fatal::OriginNotAllowed).await;
    }
    if !protocol_supported(protocol.as_deref()) {
        return fatal(&mut ws, Fatal::UnsupportedProtocol).await;
    }
    let (handle, rx) = ConnHandle::new(SocketId::random(), state.config.outbound_queue_size);
    // With `authorized_connections_timeout`, a connection counts toward `max_connections` only
    // once it has authorized itself (`Session::admit`): strangers holding connections with the
    // public key cannot use up the quota.
    let admitted = app.authorized_connections_timeout == 0;
    if !admitted {
        let ns = state.adapter.local().namespace(&app.id);
        ns.add_pending(handle.clone());
    } else if !state.adapter.add_connection(&app, handle.clone()).await {
        return fatal(&mut ws, Fatal::OverQuota).await;
    }
    state
        .metrics
        .new_connections
        .with_label_values(&[&app.id])
        .inc();
    handle.send(frames::connection_established(
        handle.socket_id,
        state.config.activity_timeout,
    ));
    let mut session = Session::new(state, app, handle, admitted);
    // A panic in a handler must not leave the connection registered: catch it, then clean up
    // exactly as for a normal disconnect.
    let outcome = AssertUnwindSafe(event_loop(&mut session, &mut ws, rx, socket))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        tracing::error!(socket_id = %session.handle.socket_id, "connection handler panicked; connection dropped");
    }
    session.cleanup().await;
    let metrics = &session.state.metrics;
    metrics
        .new_disconnections
        .with_label_values(&[&session.app.id])
        .inc();
    if session.handle.pending_close() == Some(Fatal::SlowConsumer) {
        metrics.slow_consumer_disconnects.inc();
    }
}

/// Turns away a connection from an address over `new_connections_per_ip_per_second`: 4100 makes
/// pusher-js retry after a second instead of giving up.
pub async fn refuse_over_rate<S>(state: &State, mut ws: WebSocketStream<S>, app_key: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(app) = state.apps().by_key(app_key) {
        state
            .metrics
            .rate_limit_rejections
            .with_label_values(&[&app.id])
            .inc();
    }
    fatal(&mut ws, Fatal::OverConnectionRate).await;
}

/// Sends a fatal error both ways pusher-js understands: `pusher:error`, then a close frame with
/// the same code.
async fn fatal<S>(ws: &mut WebSocketStream<S>, why: Fatal)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(
        CLOSE_GRACE,
        ws.send(Message::Text(frames::error(
            why.code(),
            why.message(),
            None,
        ))),
    )
    .await;
    close(ws, why).await;
}

/// Sends a close frame and waits briefly for the peer's, so the close code is not lost to a
/// reset.
async fn close<S>(ws: &mut WebSocketStream<S>, why: Fatal)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(why.code()),
        reason: why.message().into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if ws.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}

enum Step {
    Close(Fatal),
    Inbound(Option<Result<Message, WsError>>),
    Outbound(Outbound),
    Timer,
}

async fn event_loop<S>(
    session: &mut Session,
    ws: &mut WebSocketStream<S>,
    rx: Receiver,
    socket: Option<SocketFd>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handle = session.handle.clone();
    let counters = ConnCounters::new(&session.state.metrics, &session.app.id);
    if let Some(SocketFd(fd)) = socket.filter(|_| session.state.config.direct_writes) {
        let ns = session.state.adapter.local().namespace(&session.app.id);
        let count = ns.count_sent(|| {
            let (messages, bytes) = (counters.sent_messages.clone(), counters.sent_bytes.clone());
            CountSent::new(move |n, len| {
                messages.inc_by(n);
                bytes.inc_by(len);
            })
        });
        handle.allow_direct(Socket::new(fd, count));
    }
    let activity = Duration::from_secs(session.state.config.activity_timeout);
    let pong_wait = Duration::from_secs(session.state.config.pong_timeout);
    let connected_at = Instant::now();
    let signin_deadline = session
        .app
        .enable_user_authentication
        .then(|| connected_at + Duration::from_secs(session.app.user_authentication_timeout));
    let authorize_deadline = (!session.admitted)
        .then(|| connected_at + Duration::from_secs(session.app.authorized_connections_timeout));
    // The next deadline still to watch: signing in while not signed in, authorizing while not
    // authorized.
    let next_deadline = |session: &Session, now: Instant| {
        let signin = signin_deadline.filter(|_| session.user_id().is_none());
        let authorize = authorize_deadline.filter(|_| !session.admitted);
        [signin, authorize]
            .into_iter()
            .flatten()
            .filter(|d| *d > now)
            .min()
    };
    let mut last_activity = connected_at;
    let mut ping_sent: Option<Instant> = None;
    let first_wake = next_deadline(session, connected_at)
        .map_or(connected_at + activity, |d| d.min(connected_at + activity));
    let timer = tokio::time::sleep_until(first_wake);
    tokio::pin!(timer);

    loop {
        // A close request first, then what the client sent, then what is queued for it. The
        // close check is a flag load: the waker `poll_frame` registers is woken for it too.
        let step = tokio::select! {
            biased;
            why = std::future::poll_fn(|_| rx.poll_close()) => Step::Close(why),
            m = ws.next() => Step::Inbound(m),
            f = std::future::poll_fn(|cx| rx.poll_frame(cx)) => Step::Outbound(f),
            () = &mut timer => Step::Timer,
        };
        // Senders write to the socket only while the task waits for frames (`poll_frame`);
        // anything else the task does may write (a pong, a close) and takes the socket back.
        if !matches!(step, Step::Outbound(_)) {
            rx.busy();
        }
        match step {
            // Over quota at authorization is announced like over quota at connect.
            Step::Close(Fatal::OverQuota) => return fatal(ws, Fatal::OverQuota).await,
            Step::Close(why) => return close(ws, why).await,
            Step::Outbound(next) => {
                let first = match &next {
                    Outbound::Frame(f) | Outbound::Rest(f, _) => f,
                };
                let (mut frames_out, mut bytes_out) = (1u64, first.len() as u64);
                let write = async {
                    match next {
                        Outbound::Frame(f) => ws.feed(Message::Text(f)).await?,
                        // What a sender could not write of its frame goes first, as raw bytes:
                        // tungstenite has nothing buffered while the connection was idle.
                        Outbound::Rest(f, done) => {
                            let (head, used) = direct::header(f.len());
                            let (h, p) = direct::framed_from(
                                head.get(..used).unwrap_or_default(),
                                f.as_bytes(),
                                done,
                            );
                            let raw = ws.get_mut();
                            raw.write_all(h).await?;
                            raw.write_all(p).await?;
                        }
                    }
                    for _ in 0..WRITE_BATCH {
                        match rx.try_recv() {
                            Some(f) => {
                                frames_out += 1;
                                bytes_out += f.len() as u64;
                                ws.feed(Message::Text(f)).await?
                            }
                            None => break,
                        }
                    }
                    ws.flush().await
                };
                let closing = std::future::poll_fn(|cx| rx.poll_close_registered(cx));
                let written = tokio::select! {
                    r = write => r.is_ok(),
                    // The client stopped reading and its queue overflowed: give up on it.
                    _ = closing => false,
                };
                counters.sent_messages.inc_by(frames_out);
                counters.sent_bytes.inc_by(bytes_out);
                if !written {
                    if let Some(why) = handle.pending_close() {
                        let _ =
                            tokio::time::timeout(Duration::from_millis(100), close(ws, why)).await;
                    }
                    return;
                }
            }
            Step::Inbound(None) => return,
            Step::Inbound(Some(Err(WsError::Capacity(CapacityError::MessageTooLong {
                ..
            })))) => {
                return close(ws, Fatal::MessageTooBig).await;
            }
            Step::Inbound(Some(Err(e))) => {
                tracing::debug!(socket_id = %handle.socket_id, error = %e, "connection read error");
                return;
            }
            Step::Inbound(Some(Ok(msg))) => {
                last_activity = Instant::now();
                ping_sent = None;
                counters.received_messages.inc();
                counters.received_bytes.inc_by(msg.len() as u64);
                match msg {
                    Message::Text(text) => {
                        super::fault::check(text.as_str());
                        session.on_text(text.as_str()).await
                    }
                    Message::Binary(_) => {
                        session.send(frames::error(
                            codes::RECONNECT,
                            "Invalid message format: binary frames are not part of the protocol",
                            None,
                        ));
                    }
                    // tungstenite queues the pong; flushing sends it now.
                    Message::Ping(_) => {
                        if ws.flush().await.is_err() {
                            return;
                        }
                    }
                    Message::Close(_) => return,
                    Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            Step::Timer => {
                let now = Instant::now();
                if let Some(deadline) = authorize_deadline {
                    if !session.admitted && now >= deadline {
                        return fatal(ws, Fatal::NotAuthorized).await;
                    }
                }
                if let Some(deadline) = signin_deadline {
                    if session.user_id().is_none() && now >= deadline {
                        return close(ws, Fatal::NotSignedIn).await;
                    }
                }
                let next = match ping_sent {
                    Some(sent) if now >= sent + pong_wait => {
                        return close(ws, Fatal::PongNotReceived).await;
                    }
                    Some(sent) => sent + pong_wait,
                    None if now >= last_activity + activity => {
                        ping_sent = Some(now);
                        session.send(frames::ping());
                        now + pong_wait
                    }
                    None => last_activity + activity,
                };
                let next = next_deadline(session, now).map_or(next, |d| next.min(d));
                timer.as_mut().reset(next);
            }
        }
    }
}
