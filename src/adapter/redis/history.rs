//! Recorded channels in a cluster (docs/recovery.md §3–§4): their history lives in Redis, and
//! Redis is the one offset authority. A publish is one script that numbers the event, appends
//! it and publishes it on the bus, so every node delivers the same order; the publisher's own
//! subscribers get it from the bus too, since a local shortcut could overtake a lower offset in
//! flight from another node. An opted-in subscribe registers first (its events wait, see
//! `channels::ordered`), then reads history, then goes live after the head it read: nothing is
//! lost between the read and the live stream, and nothing already replayed comes twice.
//!
//! A history Redis lost (restart, flush, failover to a replica that lagged) gets a new epoch,
//! decided inside the scripts (`scripts::OPEN_HISTORY`), so an old position gets
//! `recovered:false`, never a false `true`.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{bus, RedisAdapter};
use crate::adapter::{HistoryQuery, HistoryUnavailable, Member, SubscribeError, Subscribed};
use crate::app::{App, Recording};
use crate::channels::handle::ConnHandle;
use crate::channels::history::{page_complete, Page, PageItem};
use crate::channels::namespace::Follow;
use crate::protocol::frames::{self, Frame};
use crate::protocol::recovery::{self, Failure, Held, Position, Request};
use crate::protocol::socket_id::SocketId;

/// Channels (app id, channel) whose events were delivered unrecorded while Redis could not be
/// written (`on_history_error = "deliver"`): their history must start a new epoch before it is
/// read or written again, since it misses those events.
pub type Rotations = HashSet<(String, String)>;

/// What the read script answered.
struct Read {
    held: Held,
    entries: Vec<Stored>,
}

/// One event as the log holds it (the frame unstamped).
struct Stored {
    offset: u64,
    except: Option<SocketId>,
    time_ms: u64,
    frame: Frame,
}

impl Stored {
    /// Parses `offset\nexcept\ntime_ms\nframe`.
    fn parse(entry: &str) -> Option<Stored> {
        let mut parts = entry.splitn(4, '\n');
        Some(Stored {
            offset: parts.next()?.parse().ok()?,
            except: parts.next()?.parse().ok(),
            time_ms: parts.next()?.parse().ok()?,
            frame: Frame::from(parts.next()?),
        })
    }
}

fn ttl_ms(rec: &Recording) -> u64 {
    rec.history_ttl.saturating_mul(1000)
}

impl RedisAdapter {
    /// Numbers, appends and publishes an event of a recorded channel (one script).
    pub(super) async fn append_recorded(
        &self,
        app: &App,
        channel: &str,
        frame: &Frame,
        except: Option<SocketId>,
        rec: &Recording,
    ) -> Result<Position, HistoryUnavailable> {
        let head = bus::numbered_head(&self.keys.node, &app.id, channel, except);
        let appended = match head {
            Some(head) if self.settle_rotations().await => {
                let time_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let except = except.map_or_else(|| "-".to_string(), |s| s.to_string());
                let call = self.scripts.history_append_call(
                    &self.keys,
                    &app.id,
                    channel,
                    &recovery::new_epoch(),
                    ttl_ms(rec),
                    rec.history_size.max(1),
                    &head,
                    &format!("{except}\n{time_ms}\n"),
                    frame.as_str(),
                );
                self.script::<(String, u64)>("history append", &call).await
            }
            _ => None,
        };
        match appended {
            Some((epoch, offset)) => {
                self.bus_published.fetch_add(1, Ordering::Relaxed);
                Ok(Position { epoch, offset })
            }
            None => Err(HistoryUnavailable),
        }
    }

    /// Remembers that the channel's history misses an event, to start it over (`Rotations`).
    pub(super) fn rotate_later(&self, app: &App, channel: &str) {
        crate::sync::lock(&self.rotations).insert((app.id.clone(), channel.to_string()));
    }

    /// Reads where a channel's history stands and at most `limit` events after `after`.
    async fn read(
        &self,
        app: &App,
        channel: &str,
        rec: &Recording,
        after: u64,
        limit: usize,
    ) -> Option<Read> {
        if !self.settle_rotations().await {
            return None;
        }
        let (epoch, head, held, items) = self
            .script::<(String, u64, u64, Vec<String>)>(
                "history read",
                &self.scripts.history_read_call(
                    &self.keys,
                    &app.id,
                    channel,
                    &recovery::new_epoch(),
                    ttl_ms(rec),
                    after,
                    limit,
                ),
            )
            .await?;
        Some(Read {
            held: Held {
                epoch,
                head,
                // The log's offsets are consecutive and end at the head.
                oldest: (held > 0).then(|| head.saturating_sub(held) + 1),
                // The log only empties by expiring (trimming keeps at least one event).
                aged_out: held == 0 && head > 0,
            },
            entries: items.iter().filter_map(|e| Stored::parse(e)).collect(),
        })
    }

    /// A page of history for the HTTP API.
    pub(super) async fn history_page(
        &self,
        app: &App,
        channel: &str,
        query: &HistoryQuery,
        rec: &Recording,
    ) -> Result<Page, HistoryUnavailable> {
        let read = self
            .read(app, channel, rec, query.after, query.limit)
            .await
            .ok_or(HistoryUnavailable)?;
        let epoch = read.held.epoch.clone();
        let same = query.epoch.as_deref().is_none_or(|e| e == epoch);
        let items: Vec<PageItem> = match same {
            true => read
                .entries
                .into_iter()
                .map(|e| PageItem {
                    offset: e.offset,
                    frame: e.frame,
                    time_ms: e.time_ms,
                })
                .collect(),
            false => Vec::new(),
        };
        let last = items.last().map(|i| i.offset);
        Ok(Page {
            complete: page_complete(&read.held, same, query.after, last),
            epoch,
            top: read.held.head,
            items,
        })
    }

    /// Forgets a channel's history: the next read or publish starts a new epoch.
    pub(super) async fn purge(&self, app: &App, channel: &str) -> Result<(), HistoryUnavailable> {
        let mut del = redis::cmd("DEL");
        del.arg(self.keys.history_meta(&app.id, channel))
            .arg(self.keys.history_log(&app.id, channel));
        self.query::<i64>("history purge", &del)
            .await
            .map(|_| ())
            .ok_or(HistoryUnavailable)
    }

    /// An opted-in subscribe on a recorded channel: registers (events wait), reads history,
    /// then queues the stamped `subscription_succeeded`, the replay and the marker and goes
    /// live after the head. When history cannot be read, the subscription is plain (no stamp,
    /// so the client knows nothing is numbered) and a position gets `unavailable`.
    pub(super) async fn subscribe_numbered(
        &self,
        app: &App,
        channel: &str,
        conn: &ConnHandle,
        member: Option<Member>,
        request: &Request,
        rec: &Recording,
    ) -> Result<Subscribed, SubscribeError> {
        let mut subscribed = self
            .subscribe_as(app, channel, conn, member, Follow::reading())
            .await?;
        if !subscribed.added {
            return Ok(subscribed);
        }
        let (after, limit) = match &request.from {
            Some(from) => (from.offset, rec.max_replay),
            None => (0, 0),
        };
        let read = self.read(app, channel, rec, after, limit).await;
        let succeeded = match &subscribed.presence {
            Some(roster) => {
                frames::presence_succeeded(channel, roster.ids.clone(), roster.hash.clone())
            }
            None => frames::subscription_succeeded(channel),
        };
        let head = read.as_ref().map(|r| Position {
            epoch: r.held.epoch.clone(),
            offset: r.held.head,
        });
        let mut announce = vec![match &head {
            Some(h) => recovery::stamp(&succeeded, h),
            None => succeeded,
        }];
        if let Some(from) = &request.from {
            let outcome = match &read {
                Some(read) => replay(read, from, request.prev_socket_id, rec, &mut announce),
                None => Err(Failure::Unavailable),
            };
            announce.push(recovery::marker(channel, outcome, head.as_ref()));
            subscribed.recovery = Some(outcome);
        }
        self.local
            .namespace(&app.id)
            .go_live(channel, conn.socket_id, announce, head.as_ref());
        subscribed.announced = true;
        Ok(subscribed)
    }

    /// Starts a new epoch for every channel delivered unrecorded while Redis was away; false
    /// while that cannot be done (history is then neither read nor written).
    pub(super) async fn settle_rotations(&self) -> bool {
        let pending: Vec<(String, String)> =
            crate::sync::lock(&self.rotations).iter().cloned().collect();
        if pending.is_empty() {
            return true;
        }
        // One channel at a time: on Redis Cluster each app is in its own slot.
        for (app, channel) in &pending {
            let mut del = redis::cmd("DEL");
            del.arg(self.keys.history_meta(app, channel))
                .arg(self.keys.history_log(app, channel));
            if self.query::<i64>("history rotate", &del).await.is_none() {
                return false;
            }
        }
        let mut rotations = crate::sync::lock(&self.rotations);
        for p in &pending {
            rotations.remove(p);
        }
        tracing::info!(
            channels = pending.len(),
            "history: new epochs for channels that delivered events unrecorded while Redis was unreachable"
        );
        true
    }
}

/// Queues the replay of everything after `from` when all of it can be recovered, skipping the
/// events the old socket was excluded from; returns how many were replayed, or why none.
fn replay(
    read: &Read,
    from: &Position,
    prev_socket_id: Option<SocketId>,
    rec: &Recording,
    out: &mut Vec<Frame>,
) -> Result<usize, Failure> {
    recovery::decide(from, &read.held, rec.max_replay)?;
    if read.entries.len() as u64 != read.held.head - from.offset {
        // The script answers atomically, so this means an undecodable entry: fail closed.
        return Err(Failure::Unavailable);
    }
    let mut replayed = 0;
    for e in &read.entries {
        if e.except.is_some() && e.except == prev_socket_id {
            continue;
        }
        let at = Position {
            epoch: read.held.epoch.clone(),
            offset: e.offset,
        };
        out.push(recovery::stamp(&e.frame, &at));
        replayed += 1;
    }
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_parse_with_their_exclusion() {
        let e = Stored::parse("7\n1.2\n1700000000000\n{\"event\":\"x\",\"data\":\"a\\nb\"}")
            .expect("parses");
        assert_eq!(e.offset, 7);
        assert_eq!(e.except, Some(SocketId(1, 2)));
        assert_eq!(e.time_ms, 1_700_000_000_000);
        assert_eq!(e.frame.as_str(), "{\"event\":\"x\",\"data\":\"a\\nb\"}");
        let plain = Stored::parse("8\n-\n1\n{}").expect("parses");
        assert_eq!(plain.except, None);
        assert!(Stored::parse("x\n-\n1\n{}").is_none());
        assert!(Stored::parse("8\n-\n1").is_none());
    }
}
