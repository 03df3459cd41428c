// Missed-message recovery for pusher-js 8 (and Laravel Echo 2, which uses it) against a Clarion
// server: docs/recovery.md in the Clarion repository.
//
//   import { withRecovery } from '@clarion/echo-recovery';
//   const recovery = withRecovery(window.Echo.connector.pusher, { persist: 'session' });
//   Echo.private('provider.42')
//     .listen('.clarion:recovery', (r) => { if (!r.recovered) reloadBookings(); })
//     .listen('BookingCreated', showBooking);
//
// What it does: it adds a `clarion` member to every `pusher:subscribe` pusher-js sends (and
// pusher-js re-sends them after every reconnect) with the channel's last position, reads the
// `clarion` stamps of the frames the server sends, and forgets a channel's position when the app
// leaves the channel. Nothing else of pusher-js or Echo changes: events still reach `.bind()` and
// `.listen()` exactly as before, the missed ones first.

const STORAGE_PREFIX = 'clarion-recovery:';

/**
 * Turns recovery on for one pusher-js client (`Echo.connector.pusher`).
 *
 * @param {object} pusher a pusher-js 8 `Pusher` instance
 * @param {{persist?: 'none'|'session', storage?: Storage}} [options] `persist: 'session'` keeps
 *   positions in `sessionStorage` (or `storage`) so that a page reload resumes too
 * @returns the handle: `position(channel)`, `resumeFrom(channel, {epoch, offset})`,
 *   `forget(channel)`, `on('recovered'|'failed', cb)`
 */
export function withRecovery(pusher, options = {}) {
  const storage =
    options.persist === 'session' ? (options.storage ?? globalThis.sessionStorage ?? null) : null;
  /** channel → {epoch, offset, socketId}: the last event this client received. */
  const positions = new Map();
  /** channels whose current subscribe asked to recover (their succeeded frame is not a start). */
  const recovering = new Set();
  const listeners = { recovered: [], failed: [] };

  const load = (channel) => {
    if (positions.has(channel) || !storage) return positions.get(channel);
    try {
      const saved = JSON.parse(storage.getItem(STORAGE_PREFIX + channel) ?? 'null');
      if (saved && typeof saved.epoch === 'string' && Number.isInteger(saved.offset)) {
        positions.set(channel, saved);
      }
    } catch {
      // unreadable storage: start fresh
    }
    return positions.get(channel);
  };
  const save = (channel, at) => {
    positions.set(channel, at);
    if (storage) {
      try {
        storage.setItem(STORAGE_PREFIX + channel, JSON.stringify(at));
      } catch {
        // full or unavailable storage: keep the position in memory only
      }
    }
  };
  const forget = (channel) => {
    positions.delete(channel);
    recovering.delete(channel);
    if (storage) {
      try {
        storage.removeItem(STORAGE_PREFIX + channel);
      } catch {
        // nothing to forget
      }
    }
  };
  const emit = (name, payload) => {
    for (const cb of listeners[name]) {
      try {
        cb(payload);
      } catch {
        // a listener's error is its own
      }
    }
  };

  // Outgoing: every subscribe carries the channel's position (or opts in fresh).
  const sendEvent = pusher.send_event.bind(pusher);
  pusher.send_event = (name, data, channel) => {
    if (name === 'pusher:subscribe' && data && typeof data.channel === 'string') {
      const at = load(data.channel);
      const clarion = { v: 1 };
      if (at) {
        clarion.epoch = at.epoch;
        clarion.offset = at.offset;
        if (at.socketId) clarion.prev_socket_id = at.socketId;
        recovering.add(data.channel);
      } else {
        recovering.delete(data.channel);
      }
      data = { ...data, clarion };
    }
    return sendEvent(name, data, channel);
  };

  // An explicit leave forgets the position (a later join starts fresh).
  const unsubscribe = pusher.unsubscribe.bind(pusher);
  pusher.unsubscribe = (channelName) => {
    forget(channelName);
    return unsubscribe(channelName);
  };

  // Incoming: pusher-js drops unknown top-level fields, so the stamps are read from the raw
  // frames of each new transport, after pusher-js has dispatched them.
  const onRaw = (messageEvent) => {
    let frame;
    try {
      frame = JSON.parse(messageEvent.data);
    } catch {
      return;
    }
    const stamp = frame && frame.clarion;
    const channel = frame && frame.channel;
    if (!stamp || typeof channel !== 'string' || typeof stamp.epoch !== 'string') return;
    const at = { epoch: stamp.epoch, offset: stamp.offset, socketId: pusher.connection.socket_id };
    if (frame.event === 'pusher_internal:subscription_succeeded') {
      // A fresh start learns the head; a recovery waits for its replay and marker.
      if (!recovering.has(channel)) save(channel, at);
      return;
    }
    if (frame.event === 'clarion:recovery') {
      recovering.delete(channel);
      save(channel, at);
      let result = {};
      try {
        result = JSON.parse(frame.data);
      } catch {
        // keep {}
      }
      emit(result.recovered ? 'recovered' : 'failed', { channel, ...result });
      return;
    }
    save(channel, at);
  };
  let watched = null;
  const watch = () => {
    const transport = pusher.connection.connection && pusher.connection.connection.transport;
    if (!transport || transport === watched) return;
    watched = transport;
    transport.bind('message', onRaw);
  };
  pusher.connection.bind('connected', watch);
  watch();

  return {
    /** The last position received on `channel`, or undefined. */
    position(channel) {
      const at = load(channel);
      return at ? { epoch: at.epoch, offset: at.offset } : undefined;
    },
    /**
     * Resume `channel` from a position handed to the page (the HTTP history's `limit=0`
     * answer, read before the page's data): call before subscribing.
     */
    resumeFrom(channel, { epoch, offset }) {
      save(channel, { epoch, offset, socketId: null });
    },
    /** Forgets `channel`'s position: its next subscribe starts fresh. */
    forget,
    /** `recovered` ({channel, replayed}) or `failed` ({channel, reason}) after each recovery. */
    on(name, cb) {
      if (!listeners[name]) throw new Error(`unknown event ${name}: use recovered or failed`);
      listeners[name].push(cb);
      return this;
    },
  };
}
