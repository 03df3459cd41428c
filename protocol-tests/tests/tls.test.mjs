// Clarion terminating TLS itself (`tls_cert`/`tls_key`; src/net/tls_stream.rs), with the real
// clients: pusher-js in Node over wss://, the official Node SDK over https://, and Chromium's
// own WebSocket over wss://. The events are large enough that a batch spans several TLS records,
// client events cross the server's read path, and a client that speaks plain HTTP to the TLS
// port gets an alert while the server goes on serving.
//
// The certificate is self-signed for the test (openssl). The first test checks it is the one the
// server presents (Node's https with that certificate as the only CA); pusher-js and the SDK
// take no CA option, so this process turns Node's verification off for them
// (NODE_TLS_REJECT_UNAUTHORIZED, read at each connection), and Chromium gets
// --ignore-certificate-errors.
//
// Clarion-only (it starts Clarion itself with TLS): skipped against another server and in the
// cluster run.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import { built } from '../lib/build.mjs';
import { launchChromium } from '../lib/chromium.mjs';
import { freePort } from '../lib/ports.mjs';
import { subscribed, unique, waitFor } from '../lib/target.mjs';

const skip =
  process.env.PT_EXTERNAL === '1'
    ? 'starts Clarion itself'
    : process.env.PT_CLUSTER === '1'
      ? 'one node: covered by the single-node run'
      : false;
const APP = { appId: '424242', key: 'tls-key', secret: 'tls-secret' };
const WAIT = 10_000;

let dir, cert, clarion, clarionLog = '', port;
const clients = [];

/** GET `path` over https, verifying the server against the test certificate only. */
function httpsGet(p) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: p, ca: cert, servername: 'localhost' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
  });
}

before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clarion-tls-'));
  const made = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-addext', 'basicConstraints=critical,CA:FALSE',
    '-addext', 'extendedKeyUsage=serverAuth',
    '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.pem'),
  ], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  cert = fs.readFileSync(path.join(dir, 'tls.pem'));
  fs.writeFileSync(
    path.join(dir, 'clarion.toml'),
    [
      `tls_cert = "${path.join(dir, 'tls.pem')}"`,
      `tls_key = "${path.join(dir, 'tls.key')}"`,
      '[[apps]]',
      `id = "${APP.appId}"`,
      `key = "${APP.key}"`,
      `secret = "${APP.secret}"`,
      'enable_client_messages = true',
      'max_client_events_per_second = 0', // the test sends 50 at once
      '',
    ].join('\n'),
  );
  port = await freePort();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^CLARION_/.test(k)));
  clarion = spawn(built('clarion'), ['--config', path.join(dir, 'clarion.toml'), '--host', '127.0.0.1', '--port', String(port)], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  clarion.stdout.setEncoding('utf8').on('data', (c) => (clarionLog += c));
  clarion.stderr.setEncoding('utf8').on('data', (c) => (clarionLog += c));
  await waitFor(() => httpsGet('/up').then((r) => r.status === 200, () => false), 20_000, `Clarion over https:\n${clarionLog}`);
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
});

after(() => {
  for (const c of clients) c.disconnect();
  clarion?.kill('SIGTERM');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const sdk = () => new PusherServer({ ...APP, host: '127.0.0.1', port: String(port), useTLS: true });

/** pusher-js over wss://, authorizing private channels with the SDK in-process. */
function wssClient() {
  const p = new Pusher(APP.key, {
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: port,
    wssPort: port,
    forceTLS: true,
    enabledTransports: ['ws'], // pusher-js's WebSocket transport; forceTLS makes it wss://
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, cb) => cb(null, sdk().authorizeChannel(socketId, channelName)),
    },
  });
  clients.push(p);
  return p;
}

test('TLS: the server presents the configured certificate (https /up verified against it alone)', { skip }, async () => {
  const r = await httpsGet('/up');
  assert.equal(r.status, 200);
});

test('TLS: pusher-js over wss:// gets a batch of 10 events of 9 KB from the SDK over https://, whole and in order', { skip }, async () => {
  const client = wssClient();
  const channel = unique('tls-big');
  const got = [];
  const ch = client.subscribe(channel);
  ch.bind('big', (d) => got.push(d));
  await subscribed(ch);
  const filler = (i) => String.fromCharCode(65 + i).repeat(9000);
  const res = await sdk().triggerBatch(
    Array.from({ length: 10 }, (_, i) => ({ channel, name: 'big', data: { i, filler: filler(i) } })),
  );
  assert.equal(res.status, 200);
  await waitFor(() => got.length === 10, WAIT, `10 events (got ${got.length})`);
  assert.deepEqual(got.map((d) => d.i), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  got.forEach((d, i) => assert.equal(d.filler, filler(i), `event ${i} intact`));
});

test('TLS: 50 client events between two pusher-js clients on a private channel arrive in order', { skip }, async () => {
  const [a, b] = [wssClient(), wssClient()];
  const channel = `private-${unique('tls-whisper')}`;
  const [ca, cb] = [a.subscribe(channel), b.subscribe(channel)];
  await Promise.all([subscribed(ca), subscribed(cb)]);
  const got = [];
  cb.bind('client-note', (d) => got.push(d.n));
  for (let n = 0; n < 50; n += 1) assert.ok(ca.trigger('client-note', { n, pad: 'x'.repeat(500) }));
  await waitFor(() => got.length === 50, WAIT, `50 client events (got ${got.length})`);
  assert.deepEqual(got, Array.from({ length: 50 }, (_, n) => n));
});

test('TLS: plain HTTP to the TLS port gets a TLS alert, and the server goes on serving', { skip }, async () => {
  const answer = await new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET /up HTTP/1.1\r\nHost: x\r\n\r\n'));
    const chunks = [];
    s.on('data', (c) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
  assert.equal(answer[0], 21, `a TLS alert record (content type 21), got ${answer.toString('hex')}`);
  const client = wssClient();
  const ch = client.subscribe(unique('tls-after'));
  await subscribed(ch);
  assert.equal((await httpsGet('/up')).status, 200);
});

test('TLS: Chromium\'s WebSocket over wss:// connects, subscribes and receives an event', { skip }, async () => {
  const { browser, error } = await launchChromium(['--ignore-certificate-errors']);
  assert.ok(browser, error);
  try {
    const page = await browser.newPage();
    const channel = unique('tls-chromium');
    await page.evaluate(
      ({ url, channel }) =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(url);
          window.frames_ = [];
          ws.onerror = () => reject(new Error('websocket error'));
          ws.onmessage = (m) => {
            const f = JSON.parse(m.data);
            window.frames_.push(f);
            if (f.event === 'pusher:connection_established') ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel } }));
            if (f.event === 'pusher_internal:subscription_succeeded') resolve();
          };
        }),
      { url: `wss://127.0.0.1:${port}/app/${APP.key}?protocol=7&client=js&version=8.4.0`, channel },
    );
    assert.equal((await sdk().trigger(channel, 'hello', { from: 'node', text: 'é'.repeat(3000) })).status, 200);
    const frame = await page.waitForFunction(() => window.frames_.find((f) => f.event === 'hello'), null, { timeout: WAIT });
    const hello = await frame.jsonValue();
    assert.deepEqual(JSON.parse(hello.data), { from: 'node', text: 'é'.repeat(3000) });
  } finally {
    await browser.close();
  }
});
