// The server under test, described by the environment, and factories for the real clients.
//
// PT_HOST, PT_PORT          where the server listens (WebSocket and HTTP API on one port)
// PT_APP_ID, PT_APP_KEY, PT_APP_SECRET   an app with client events enabled (numeric id: the
//                            Python SDK insists on it)
// PT_SERVER_CMD             optional: a shell command that starts a fresh server with the same app
//                            on the port given as {port}; needed by the reconnect test
// PT_PORTS                  optional: comma-separated ports of the nodes of a cluster; each new
//                            client (and each SDK instance) takes the next one, so clients of one
//                            test are spread over the nodes
import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import Echo from 'laravel-echo';

export const target = {
  host: process.env.PT_HOST ?? '127.0.0.1',
  port: Number(process.env.PT_PORT ?? 6001),
  appId: process.env.PT_APP_ID ?? '123456',
  key: process.env.PT_APP_KEY ?? 'pt-key',
  secret: process.env.PT_APP_SECRET ?? 'pt-secret',
  serverCmd: process.env.PT_SERVER_CMD ?? '',
  ports: (process.env.PT_PORTS ?? '').split(',').filter(Boolean).map(Number),
};

let nextNode = 0;
/** The port for the next client: round-robin over the cluster's nodes, or the one port. */
export function nextPort() {
  if (target.ports.length === 0) return target.port;
  const port = target.ports[nextNode % target.ports.length];
  nextNode += 1;
  return port;
}

/** Every node's port: the cluster's (PT_PORTS), or the one port. */
export const nodePorts = target.ports.length > 0 ? target.ports : [target.port];

/** pusher-js/Echo options that put a client on node `i` (modulo the number of nodes). */
export function onNode(i) {
  const port = nodePorts[i % nodePorts.length];
  return { wsPort: port, wssPort: port };
}

/** A 32-byte master key for end-to-end encrypted channels (client-side only, as with Pusher). */
export const encryptionMasterKeyBase64 = Buffer.alloc(32, 7).toString('base64');

/** The official Node server SDK pointed at the target (or at another port). */
export function serverSdk(overrides = {}) {
  return new PusherServer({
    appId: target.appId,
    key: target.key,
    secret: target.secret,
    host: target.host,
    port: String(overrides.port ?? nextPort()),
    useTLS: false,
    encryptionMasterKeyBase64,
    ...overrides,
  });
}

/** Options every pusher-js client here needs to talk to a self-hosted server. */
export function clientOptions(extra = {}) {
  const port = nextPort();
  return {
    cluster: 'local',
    wsHost: target.host,
    wsPort: port,
    wssPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    ...extra,
  };
}

const clients = new Set();

/** A pusher-js client (of the app whose key is `extra.key`, else the target's); closed by closeAll(). */
export function pusherClient(extra = {}) {
  const { key = target.key, ...options } = extra;
  const p = new Pusher(key, clientOptions(options));
  clients.add({ close: () => p.disconnect() });
  return p;
}

/** A Laravel Echo client (broadcaster 'pusher' or 'reverb'); closed by closeAll(). */
export function echoClient(extra = {}) {
  const broadcaster = extra.broadcaster ?? 'pusher';
  const port = nextPort();
  const opts =
    broadcaster === 'reverb'
      ? { broadcaster, key: target.key, wsHost: target.host, wsPort: port, wssPort: port, forceTLS: false, enabledTransports: ['ws'] }
      : { broadcaster, key: target.key, ...clientOptions() };
  const echo = new Echo({ ...opts, Pusher, ...extra });
  clients.add({ close: () => echo.disconnect() });
  return echo;
}

/** Disconnects every client made by this module. */
export function closeAll() {
  for (const c of clients) {
    try {
      c.close();
    } catch {
      // already closed
    }
  }
  clients.clear();
}

/** Resolves when pusher-js reaches the 'connected' state. */
export function connected(pusher) {
  return new Promise((resolve, reject) => {
    if (pusher.connection.state === 'connected') return resolve(pusher.connection.socket_id);
    const t = setTimeout(() => reject(new Error(`not connected, state ${pusher.connection.state}`)), 5000);
    pusher.connection.bind('connected', () => {
      clearTimeout(t);
      resolve(pusher.connection.socket_id);
    });
  });
}

/** Resolves with the first argument of the first call of `bind(cb)`; rejects after `ms`. */
export function nextCall(bind, ms = 5000, what = 'event') {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    bind((...args) => {
      clearTimeout(t);
      resolve(args[0]);
    });
  });
}

/** Polls `fn` until it returns a truthy value; rejects after `ms`. */
export async function waitFor(fn, ms = 5000, what = 'condition') {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A channel or event name no other test (or earlier run) uses. */
export const unique = (name) => `${name}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;

/** Records every call of a callback: `calls` holds the first arguments. */
export function recorder() {
  const calls = [];
  return { calls, cb: (arg) => calls.push(arg) };
}

/** A subscription-succeeded promise for a pusher-js channel. */
export function subscribed(channel) {
  return new Promise((resolve, reject) => {
    if (channel.subscribed) return resolve(channel);
    const t = setTimeout(() => reject(new Error(`subscription to ${channel.name} timed out`)), 5000);
    channel.bind('pusher:subscription_succeeded', (data) => {
      clearTimeout(t);
      resolve(data);
    });
    channel.bind('pusher:subscription_error', (err) => {
      clearTimeout(t);
      reject(Object.assign(new Error(`subscription to ${channel.name} failed`), { err }));
    });
  });
}
