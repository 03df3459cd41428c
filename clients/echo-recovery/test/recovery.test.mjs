// The plugin with the pinned pusher-js 8 and Laravel Echo 2 in Node, against a real Clarion
// (the debug build of this repository; built when missing) with a recorded channel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import Echo from 'laravel-echo';
import { withRecovery } from '../index.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..', '..');
const APP = { id: '1', key: 'rk', secret: 'rs' };
let server;
let port;
const clients = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

async function waitFor(fn, what, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    if (fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  let bin = process.env.CLARION_BIN;
  if (!bin) {
    // Cargo names the binary it built, wherever CARGO_TARGET_DIR or a cargo config puts it.
    const build = spawnSync(
      'cargo',
      ['build', '--quiet', '--bin', 'clarion', '--message-format=json-render-diagnostics'],
      { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
    );
    assert.equal(build.status, 0, 'cargo build');
    bin = build.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .find((m) => m.reason === 'compiler-artifact' && m.target?.name === 'clarion' && m.executable)?.executable;
    assert.ok(bin, 'cargo named the clarion binary it built');
  }
  port = await freePort();
  const config = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'echo-recovery-')), 'clarion.toml');
  fs.writeFileSync(
    config,
    `port = ${port}\nhost = "127.0.0.1"\nmetrics_port = 0\n[[apps]]\nid = "${APP.id}"\nkey = "${APP.key}"\nsecret = "${APP.secret}"\n` +
      `[[apps.recovery]]\nchannels = ["private-provider.*"]\n`,
  );
  server = spawn(bin, ['--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  const end = Date.now() + 15000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/up`);
      if (r.ok) break;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error('clarion did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(() => {
  for (const c of clients) c.disconnect();
  server?.kill('SIGTERM');
});

const sdk = () =>
  new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(port), useTLS: false });

function echo() {
  const e = new Echo({
    broadcaster: 'pusher',
    key: APP.key,
    Pusher,
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      // What the Laravel backend's /broadcasting/auth would answer.
      customHandler: ({ socketId, channelName }, callback) => {
        const sig = crypto.createHmac('sha256', APP.secret).update(`${socketId}:${channelName}`).digest('hex');
        callback(null, { auth: `${APP.key}:${sig}` });
      },
    },
  });
  clients.push(e);
  return e;
}

const publish = (channel, n) => sdk().trigger(channel, 'booked', { n });

test('a reconnect gets every missed event once, in order, then recovered:true', async () => {
  const e = echo();
  const recovery = withRecovery(e.connector.pusher);
  const seen = [];
  const markers = [];
  const recovered = [];
  recovery.on('recovered', (r) => recovered.push(r));
  e.private('provider.42')
    .listen('.booked', (d) => seen.push(d.n))
    .listen('.clarion:recovery', (r) => markers.push(r));
  const pusher = e.connector.pusher;
  await waitFor(() => pusher.channel('private-provider.42')?.subscribed, 'subscribed');
  await waitFor(() => recovery.position('private-provider.42'), 'a position');
  await publish('private-provider.42', 1);
  await publish('private-provider.42', 2);
  await waitFor(() => seen.length === 2, 'two live events');
  assert.equal(recovery.position('private-provider.42').offset, 2);

  // The provider's phone loses the network; three bookings are made meanwhile.
  pusher.disconnect();
  await waitFor(() => pusher.connection.state === 'disconnected', 'disconnected');
  for (const n of [3, 4, 5]) await publish('private-provider.42', n);
  pusher.connect();
  await waitFor(() => markers.length === 1, 'the recovery marker');
  assert.deepEqual(seen, [1, 2, 3, 4, 5], 'missed events, once, in order');
  assert.deepEqual(markers[0], { recovered: true, replayed: 3 });
  assert.deepEqual(recovered, [{ channel: 'private-provider.42', recovered: true, replayed: 3 }]);

  await publish('private-provider.42', 6);
  await waitFor(() => seen.length === 6, 'live again');
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
  assert.equal(recovery.position('private-provider.42').offset, 6);

  e.leave('provider.42');
  assert.equal(recovery.position('private-provider.42'), undefined, 'a leave forgets');
});

test('resumeFrom closes the gap between a page render and its subscribe', async () => {
  const channel = 'private-provider.7';
  // The controller reads the position before the page's data (HTTP history, limit=0).
  const res = await sdk().get({ path: `/channels/${channel}/history`, params: { limit: 0 } });
  const head = await res.json();
  assert.equal(head.top, 0);
  // Bookings made while the page is on its way to the browser.
  await publish(channel, 1);
  await publish(channel, 2);
  const e = echo();
  const recovery = withRecovery(e.connector.pusher);
  recovery.resumeFrom(channel, { epoch: head.epoch, offset: head.top });
  const seen = [];
  const markers = [];
  e.private('provider.7')
    .listen('.booked', (d) => seen.push(d.n))
    .listen('.clarion:recovery', (r) => markers.push(r));
  await waitFor(() => markers.length === 1, 'the marker');
  assert.deepEqual(seen, [1, 2]);
  assert.equal(markers[0].recovered, true);
});

test('a position the server cannot recover says so, and the app reloads', async () => {
  const e = echo();
  const recovery = withRecovery(e.connector.pusher);
  const failed = [];
  recovery.on('failed', (f) => failed.push(f));
  recovery.resumeFrom('private-provider.9', { epoch: 'not-this-one', offset: 3 });
  const markers = [];
  e.private('provider.9').listen('.clarion:recovery', (r) => markers.push(r));
  await waitFor(() => markers.length === 1, 'the marker');
  assert.deepEqual(markers[0], { recovered: false, reason: 'epoch_changed' });
  assert.deepEqual(failed, [{ channel: 'private-provider.9', recovered: false, reason: 'epoch_changed' }]);
  // It continues from the head the marker carried.
  assert.notEqual(recovery.position('private-provider.9').epoch, 'not-this-one');
});

test('persist: session keeps positions in the given storage', async () => {
  const store = new Map();
  const storage = {
    getItem: (k) => (store.has(k) ? store.get(k) : null),
    setItem: (k, v) => store.set(k, v),
    removeItem: (k) => store.delete(k),
  };
  const e = echo();
  const recovery = withRecovery(e.connector.pusher, { persist: 'session', storage });
  e.private('provider.11').listen('.booked', () => {});
  await waitFor(() => recovery.position('private-provider.11'), 'a position');
  await publish('private-provider.11', 1);
  await waitFor(() => recovery.position('private-provider.11').offset === 1, 'offset 1');
  const saved = JSON.parse(store.get('clarion-recovery:private-provider.11'));
  assert.equal(saved.offset, 1);
  // A new page (a new client) with the same storage resumes from there.
  const again = withRecovery(echo().connector.pusher, { persist: 'session', storage });
  assert.equal(again.position('private-provider.11').offset, 1);
});
