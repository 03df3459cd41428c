//! The pub/sub bus between nodes. A message is a few newline-separated header fields followed by
//! the frame's bytes exactly as subscribers receive them: the frame is encoded once by the node
//! that publishes it, never re-encoded (and never JSON inside JSON).
//!
//! A recorded channel's event (`Numbered`) is published by the history script itself, which
//! writes the epoch and offset it assigned between the header and the frame; it reaches every
//! node, the publisher's own included, in offset order (docs/recovery.md §3).
//!
//! A channel's events (broadcasts, numbered events, count changes) go on that channel's own bus
//! channel, which only nodes with subscribers there listen to (`interest`); what concerns a
//! whole app (user transitions, terminations) goes on one channel for every node on a single
//! Redis (or Sentinel's master), and on the app's sharded channel on Redis Cluster
//! (`shard_bus`). The listener here receives a single server's messages.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;

use super::keys::Keys;
use super::RedisAdapter;
use crate::protocol::frames::Frame;
use crate::protocol::recovery::Position;
use crate::protocol::socket_id::SocketId;

/// What one node tells the others.
#[derive(Debug, PartialEq)]
pub enum Message {
    /// Deliver `frame` to the subscribers of `channel` except `except`.
    Broadcast {
        app: String,
        channel: String,
        except: Option<SocketId>,
        frame: Frame,
    },
    /// Close the connections signed in as `user`.
    Terminate { app: String, user: String },
    /// A channel's subscription count changed (numbered `version`).
    Count {
        app: String,
        channel: String,
        count: usize,
        version: u64,
    },
    /// A user's first signed-in connection anywhere (`online`) or last one gone; published by
    /// the user scripts, it reaches every node, the publisher's own included.
    Watch {
        app: String,
        user: String,
        online: bool,
    },
    /// A recorded channel's event, numbered `at` by the history script.
    Numbered {
        app: String,
        channel: String,
        except: Option<SocketId>,
        at: Position,
        frame: Frame,
    },
}

/// The header fields (with their newlines) that the history script puts before the epoch, the
/// offset and the frame of a `Numbered` message; `None` for a field that holds a newline.
pub fn numbered_head(
    node: &str,
    app: &str,
    channel: &str,
    except: Option<SocketId>,
) -> Option<String> {
    if [node, app, channel].iter().any(|f| f.contains('\n')) {
        return None;
    }
    let except = except.map_or_else(|| "-".to_string(), |s| s.to_string());
    Some(format!("N\n{node}\n{app}\n{channel}\n{except}\n"))
}

/// The header fields the user scripts put before `1`/`0` and the user id of a `Watch`
/// message; `None` when the app id holds a newline.
pub fn watch_head(node: &str, app: &str) -> Option<String> {
    if [node, app].iter().any(|f| f.contains('\n')) {
        return None;
    }
    Some(format!("W\n{node}\n{app}\n-\n-\n"))
}

/// Encodes a message from `node`. Header fields never contain a newline (channel names cannot;
/// app ids and user ids that do are refused by `encode`).
pub fn encode(node: &str, m: &Message) -> Option<Vec<u8>> {
    let (kind, app, target, except, payload): (&str, &str, &str, String, &[u8]) = match m {
        Message::Broadcast {
            app,
            channel,
            except,
            frame,
        } => (
            "B",
            app,
            channel,
            except.map_or_else(|| "-".to_string(), |s| s.to_string()),
            frame.as_str().as_bytes(),
        ),
        Message::Terminate { app, user } => ("T", app, user, "-".to_string(), b""),
        Message::Count {
            app,
            channel,
            count,
            version,
        } => {
            let head = format!("C\n{node}\n{app}\n{channel}\n-\n{count} {version}");
            if [node, app, channel].iter().any(|f| f.contains('\n')) {
                return None;
            }
            return Some(head.into_bytes());
        }
        Message::Watch { app, user, online } => {
            let head = watch_head(node, app)?;
            return Some(format!("{head}{}{user}", u8::from(*online)).into_bytes());
        }
        Message::Numbered {
            app,
            channel,
            except,
            at,
            frame,
        } => {
            let head = numbered_head(node, app, channel, *except)?;
            let tail = format!("{}\n{}\n{}", at.epoch, at.offset, frame.as_str());
            return Some(format!("{head}{tail}").into_bytes());
        }
    };
    if [node, app, target].iter().any(|f| f.contains('\n')) {
        return None;
    }
    let mut out = Vec::with_capacity(16 + node.len() + app.len() + target.len() + payload.len());
    for field in [kind, node, app, target, &except] {
        out.extend_from_slice(field.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(payload);
    Some(out)
}

/// Decodes a message; returns the sender's node id too.
pub fn decode(bytes: &[u8]) -> Option<(String, Message)> {
    let mut parts = bytes.splitn(6, |b| *b == b'\n');
    let mut field = || {
        parts
            .next()
            .and_then(|p| std::str::from_utf8(p).ok())
            .map(str::to_string)
    };
    let (kind, node, app, target, except) = (field()?, field()?, field()?, field()?, field()?);
    let payload = parts.next().unwrap_or(b"");
    let msg = match kind.as_str() {
        "B" => {
            let text = std::str::from_utf8(payload).ok()?;
            Message::Broadcast {
                app,
                channel: target,
                except: except.parse().ok(),
                frame: Frame::from(text),
            }
        }
        "T" => Message::Terminate { app, user: target },
        "C" => {
            let text = std::str::from_utf8(payload).ok()?;
            let (count, version) = text.split_once(' ')?;
            Message::Count {
                app,
                channel: target,
                count: count.parse().ok()?,
                version: version.parse().ok()?,
            }
        }
        "W" => {
            let text = std::str::from_utf8(payload).ok()?;
            let online = match text.as_bytes().first() {
                Some(b'1') => true,
                Some(b'0') => false,
                _ => return None,
            };
            Message::Watch {
                app,
                user: text.get(1..)?.to_string(),
                online,
            }
        }
        "N" => {
            let mut rest = payload.splitn(3, |b| *b == b'\n');
            let mut text = || rest.next().and_then(|p| std::str::from_utf8(p).ok());
            let (epoch, offset, frame) = (text()?, text()?, text()?);
            Message::Numbered {
                app,
                channel: target,
                except: except.parse().ok(),
                at: Position {
                    epoch: epoch.to_string(),
                    offset: offset.parse().ok()?,
                },
                frame: Frame::from(frame),
            }
        }
        _ => return None,
    };
    Some((node, msg))
}

impl RedisAdapter {
    /// Publishes a message to the other nodes.
    pub(super) async fn publish(&self, m: &Message) {
        let Some(bytes) = encode(&self.keys.node, m) else {
            return;
        };
        self.bus_published.fetch_add(1, Ordering::Relaxed);
        let mut cmd = redis::cmd(self.keys.publish_command());
        cmd.arg(m.bus(&self.keys)).arg(bytes);
        let _: Option<i64> = self.query("publish", &cmd).await;
    }

    /// A message from the bus: applied here unless this node sent it (numbered events and
    /// user transitions come back to their publisher too: the bus is their order).
    pub(super) fn receive(&self, bytes: &[u8]) {
        self.bus_received.fetch_add(1, Ordering::Relaxed);
        match decode(bytes) {
            Some((from, m)) if from != self.keys.node || m.is_ordered_by_bus() => {
                self.deliver_local(m)
            }
            Some(_) => {}
            None => tracing::debug!("ignored an undecodable bus message"),
        }
    }

    /// Applies a message from another node to this node's subscribers.
    pub(super) fn deliver_local(&self, m: Message) {
        match m {
            Message::Broadcast {
                app,
                channel,
                except,
                frame,
            } => {
                self.local
                    .namespace(&app)
                    .broadcast(&channel, &frame, except);
            }
            Message::Terminate { app, user } => {
                self.local.namespace(&app).terminate_user(&user);
            }
            Message::Numbered {
                app,
                channel,
                except,
                at,
                frame,
            } => {
                self.local
                    .namespace(&app)
                    .deliver_numbered(&channel, &frame, &at, except);
            }
            Message::Count {
                app,
                channel,
                count,
                version,
            } => self.local.offer_count(&app, &channel, count, version),
            Message::Watch { app, user, online } => {
                self.local.namespace(&app).notify_watchers(&user, online)
            }
        }
    }
}

/// Listens on the bus for as long as the adapter lives, reconnecting with backoff.
pub fn spawn_listener(adapter: Weak<RedisAdapter>, channel: String) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            let Some(this) = adapter.upgrade() else {
                return;
            };
            // Seen before connecting: a move while connecting makes the next wait end at once.
            let mut moves = this.endpoint.moves();
            moves.borrow_and_update();
            let found = this.endpoint.client().await;
            drop(this);
            let connected = async {
                let client = found?;
                let (mut sink, stream) = client.get_async_pubsub().await?.split();
                sink.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>((sink, stream))
            };
            let (sink, mut stream) =
                match tokio::time::timeout(Duration::from_secs(2), connected).await {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => {
                        fail(&adapter, &e);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                    Err(_) => {
                        fail(&adapter, &"timed out connecting");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                };
            backoff = Duration::from_millis(200);
            if let Some(this) = adapter.upgrade() {
                let _ = this.health.ok();
                // The channels this node has subscribers on are joined on the new connection.
                this.interest.connected(sink);
                // Redis may have lost our state (restart) or missed it (outage): re-assert now.
                this.resync_soon();
                // Recorded events published while this node was not listening are missing
                // here: the clients that follow them resubscribe and recover them.
                let closed = this.local.close_numbered();
                if closed > 0 {
                    tracing::info!(
                        connections = closed,
                        "bus resubscribed: closed opted-in connections (4200) to recover from history"
                    );
                }
            }
            let mut moved = false;
            loop {
                let msg = tokio::select! {
                    msg = stream.next() => msg,
                    // The master moved (Sentinel): subscribe there instead.
                    _ = moves.changed() => {
                        tracing::info!("bus: the master moved; subscribing there");
                        moved = true;
                        None
                    }
                };
                let Some(msg) = msg else {
                    break;
                };
                let Some(this) = adapter.upgrade() else {
                    return;
                };
                this.receive(msg.get_payload_bytes());
            }
            if let Some(this) = adapter.upgrade() {
                this.interest.disconnected(true);
            }
            if !moved {
                fail(&adapter, &"subscription connection lost");
            }
        }
    });
}

fn fail(adapter: &Weak<RedisAdapter>, e: &dyn std::fmt::Display) {
    if let Some(this) = adapter.upgrade() {
        this.health.fail("bus subscription", e);
    }
}

impl Message {
    /// The bus channel the message goes on: its channel's own for a channel's events, the
    /// app's for the rest.
    pub fn bus(&self, keys: &Keys) -> String {
        match self {
            Message::Broadcast { app, channel, .. }
            | Message::Count { app, channel, .. }
            | Message::Numbered { app, channel, .. } => keys.channel_bus(app, channel),
            Message::Terminate { app, .. } | Message::Watch { app, .. } => keys.bus(app),
        }
    }

    fn is_ordered_by_bus(&self) -> bool {
        matches!(self, Message::Numbered { .. } | Message::Watch { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = Message::Broadcast {
            app: "1".into(),
            channel: "private-a".into(),
            except: Some(SocketId(1, 2)),
            frame: Frame::from("{\"event\":\"x\",\"data\":\"a\\nb\"}"),
        };
        let bytes = encode("node-1", &m).expect("encodes");
        assert_eq!(decode(&bytes), Some(("node-1".to_string(), m)));
        let t = Message::Terminate {
            app: "1".into(),
            user: "42".into(),
        };
        assert_eq!(
            decode(&encode("n", &t).expect("encodes")),
            Some(("n".to_string(), t))
        );
        assert!(encode(
            "n",
            &Message::Terminate {
                app: "1".into(),
                user: "a\nb".into()
            }
        )
        .is_none());
        assert!(decode(b"garbage").is_none());
        let n = Message::Numbered {
            app: "1".into(),
            channel: "private-a".into(),
            except: None,
            at: Position {
                epoch: "e1".into(),
                offset: 7,
            },
            frame: Frame::from("{\"event\":\"x\",\"data\":\"a\\nb\"}"),
        };
        let c = Message::Count {
            app: "1".into(),
            channel: "c".into(),
            count: 12,
            version: 99,
        };
        assert_eq!(
            decode(&encode("n", &c).expect("encodes")),
            Some(("n".to_string(), c))
        );
        for online in [true, false] {
            let w = Message::Watch {
                app: "1".into(),
                user: "a\nb 7".into(),
                online,
            };
            let bytes = encode("n", &w).expect("encodes");
            assert!(bytes.starts_with(watch_head("n", "1").expect("head").as_bytes()));
            assert_eq!(decode(&bytes), Some(("n".to_string(), w)));
        }
        let bytes = encode("n", &n).expect("encodes");
        assert!(bytes.starts_with(
            numbered_head("n", "1", "private-a", None)
                .expect("head")
                .as_bytes()
        ));
        assert_eq!(decode(&bytes), Some(("n".to_string(), n)));
    }
}
