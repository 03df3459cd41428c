// Webhooks (docs/protocol.md §6), checked with the official SDKs: the Node SDK's
// pusher.webhook({headers, rawBody}).isValid()/getEvents() for every request, and the Python SDK's
// validate_webhook() (python/webhook_check.py) for all of them at the end.
//
// Starts its own server with PT_WEBHOOK_SERVER_CMD (see run.mjs): one standalone node with the
// same app, webhook_delay_ms = 500 and a single target for every event type, pointed at a local
// HTTP receiver that records each request's headers and raw body. Clients connect to that node.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { target, pusherClient, serverSdk, connected, nextCall, subscribed, sleep, closeAll } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';
import { freePort } from '../lib/ports.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const webhookCheck = path.resolve(here, '..', 'python', 'webhook_check.py');

/** webhook_delay_ms in the config PT_WEBHOOK_SERVER_CMD starts the node with. */
const DELAY_MS = 500;
/** Keeps channel names apart from other runs. */
const RUN = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
/** The event kinds this file produces; the Python check must see each of them. */
const KINDS = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event'];

/** Every request the receiver got: headers (lower-case keys, as node:http gives them), raw body. */
const received = [];
let auth = null;
let receiver = null;
let node = null; // { child, exited, output: string[] }
let nodePort = 0;
let setup = null;

after(async () => {
  closeAll();
  await stopNode();
  if (receiver) {
    receiver.closeAllConnections();
    await new Promise((r) => receiver.close(r));
  }
  if (auth) await auth.close();
});


/** Starts everything once; every test awaits it, so a setup failure fails each test clearly. */
function ready() {
  setup ??= start();
  return setup;
}

async function start() {
  const cmd = process.env.PT_WEBHOOK_SERVER_CMD ?? '';
  if (!cmd.trim()) {
    throw new Error(
      'PT_WEBHOOK_SERVER_CMD is not set: run the suite with `node run.mjs`, or with PT_EXTERNAL=1 set it to a ' +
        'shell command that starts a standalone server with the same app, webhook_delay_ms = 500 and one webhook ' +
        'target (all event types) whose URL is {webhook_url}, on port {port}',
    );
  }
  auth = await startAuthServer();

  receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let events = [];
      try {
        events = JSON.parse(body).events ?? [];
      } catch {
        // kept as is: the validity checks report it
      }
      received.push({ method: req.method, url: req.url, headers: req.headers, body, events, at: Date.now() });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${receiver.address().port}/pusher/webhooks`;

  nodePort = await freePort();
  const line = cmd.replaceAll('{port}', String(nodePort)).replaceAll('{webhook_url}', url);
  // Its own process group, so the shell and the server are killed together.
  const child = spawn('sh', ['-c', line], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  const output = [];
  const keep = (chunk) => {
    output.push(chunk.toString());
    while (output.join('').length > 8000) output.shift();
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  node = { child, exited, output };

  const end = Date.now() + 20000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the webhook node exited (${child.exitCode ?? child.signalCode}) before answering /up\n${nodeLog()}`);
    }
    try {
      const r = await fetch(`http://${target.host}:${nodePort}/up`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error(`the webhook node on port ${nodePort} did not come up within 20 s\n${nodeLog()}`);
    await sleep(50);
  }
}

function nodeLog() {
  return `--- PT_WEBHOOK_SERVER_CMD output ---\n${node ? node.output.join('') : '(not started)'}`;
}

async function stopNode() {
  if (!node) return;
  const { child, exited } = node;
  node = null;
  const kill = (signal) => {
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  kill('SIGTERM');
  let timer;
  const timeout = new Promise((r) => (timer = setTimeout(() => r('timeout'), 5000)));
  const result = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  if (result === 'timeout') {
    kill('SIGKILL');
    await exited;
  }
}

/** A pusher-js client of the webhook node. */
function client(extra = {}) {
  return pusherClient({ wsPort: nodePort, wssPort: nodePort, ...extra });
}

/** Resolves with the first recorded request that carries an event matching `match`. */
async function webhookFor(match, what, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const hook = received.find((h) => h.events.some(match));
    if (hook) return hook;
    if (Date.now() > end) {
      const got = received.map((h) => `  ${h.body}`).join('\n') || '  (none)';
      assert.fail(`no ${what} webhook within ${ms} ms; received so far:\n${got}\n${nodeLog()}`);
    }
    await sleep(20);
  }
}

/** Whether a webhook carrying an event matching `match` was recorded. */
const seen = (match) => received.some((h) => h.events.some(match));

/** The official Node SDK's view of a recorded webhook. */
const sdkWebhook = (hook) => serverSdk({ port: nodePort }).webhook({ headers: hook.headers, rawBody: hook.body });

const hmac = (body) => crypto.createHmac('sha256', target.secret).update(body, 'utf8').digest('hex');

/** Asserts the headers and that the Node SDK validates the webhook; returns getEvents(). */
function assertValid(hook) {
  const show = `headers: ${JSON.stringify(hook.headers)}\nbody: ${hook.body}`;
  assert.equal(hook.method, 'POST', `webhook sent with ${hook.method}\n${show}`);
  assert.equal(hook.url, '/pusher/webhooks', `webhook sent to ${hook.url}\n${show}`);
  assert.equal(hook.headers['content-type'], 'application/json', `Content-Type must be exactly application/json (the Node SDK ignores the body otherwise)\n${show}`);
  assert.equal(hook.headers['x-pusher-key'], target.key, `X-Pusher-Key\n${show}`);
  assert.equal(
    hook.headers['x-pusher-signature'],
    hmac(hook.body),
    `X-Pusher-Signature: expected hex HMAC-SHA256 of the raw body with the app secret\n${show}`,
  );
  const wh = sdkWebhook(hook);
  assert.equal(wh.isValid(), true, `the Node SDK's webhook().isValid() is false\n${show}`);
  const time = wh.getTime().getTime();
  assert.ok(Number.isFinite(time) && Math.abs(time - hook.at) < 60_000, `time_ms ${wh.getData().time_ms} is not the send time (received at ${hook.at})`);
  const events = wh.getEvents();
  assert.ok(Array.isArray(events) && events.length > 0, `no events in ${hook.body}`);
  return events;
}

/** Asserts the webhook is valid and contains exactly `expected` (all documented fields, no more). */
function assertEvent(hook, expected) {
  const events = assertValid(hook);
  const ev = events.find((e) => e.name === expected.name && e.channel === expected.channel);
  assert.ok(ev, `getEvents() has no ${expected.name} for ${expected.channel}: ${JSON.stringify(events)}`);
  assert.deepEqual(ev, expected);
}

test('channel_occupied: first subscriber of a public channel → signed webhook, Node SDK isValid() and getEvents()', async () => {
  await ready();
  const channel = `pt-wh-occupied-${RUN}`;
  const p = client();
  await subscribed(p.subscribe(channel));
  const hook = await webhookFor((e) => e.name === 'channel_occupied' && e.channel === channel, 'channel_occupied');
  assertEvent(hook, { name: 'channel_occupied', channel });
});

test('channel_vacated: last subscriber unsubscribes → webhook held back webhook_delay_ms (500 ms), then valid', async () => {
  await ready();
  const channel = `pt-wh-vacated-${RUN}`;
  const p = client();
  await subscribed(p.subscribe(channel));
  await webhookFor((e) => e.name === 'channel_occupied' && e.channel === channel, 'channel_occupied');
  const left = Date.now();
  p.unsubscribe(channel);
  const hook = await webhookFor((e) => e.name === 'channel_vacated' && e.channel === channel, 'channel_vacated');
  assert.ok(hook.at - left >= DELAY_MS - 20, `channel_vacated arrived ${hook.at - left} ms after the unsubscribe, before the ${DELAY_MS} ms delay`);
  assertEvent(hook, { name: 'channel_vacated', channel });
});

test('channel_vacated: re-subscribing within the delay sends neither channel_vacated nor a second channel_occupied', async () => {
  await ready();
  const channel = `pt-wh-reload-${RUN}`;
  const p = client();
  const ch = p.subscribe(channel);
  await subscribed(ch);
  await webhookFor((e) => e.name === 'channel_occupied' && e.channel === channel, 'channel_occupied');
  p.unsubscribe(channel);
  await sleep(100);
  await subscribed(p.subscribe(channel));
  await sleep(DELAY_MS + 500);
  const forChannel = received.filter((h) => h.events.some((e) => e.channel === channel && e.name !== 'subscription_count'));
  assert.deepEqual(
    forChannel.flatMap((h) => h.events.map((e) => e.name)),
    ['channel_occupied'],
    `a quick re-subscribe must be invisible: ${forChannel.map((h) => h.body).join(' ')}`,
  );
});

test('member_added: user joins a presence channel (auth endpoint) → valid webhook with channel and user_id', async () => {
  await ready();
  const channel = `presence-pt-wh-added-${RUN}`;
  const p = client(authOptions(auth, '7'));
  await subscribed(p.subscribe(channel));
  const hook = await webhookFor((e) => e.name === 'member_added' && e.channel === channel, 'member_added');
  assertEvent(hook, { name: 'member_added', channel, user_id: '7' });
});

test("member_removed: user's last connection leaves a presence channel → valid webhook after the delay", async () => {
  await ready();
  const channel = `presence-pt-wh-removed-${RUN}`;
  const stays = client(authOptions(auth, '8'));
  await subscribed(stays.subscribe(channel));
  const leaves = client(authOptions(auth, '9'));
  await subscribed(leaves.subscribe(channel));
  await webhookFor((e) => e.name === 'member_added' && e.channel === channel && e.user_id === '9', 'member_added of user 9');
  const left = Date.now();
  leaves.disconnect();
  const hook = await webhookFor((e) => e.name === 'member_removed' && e.channel === channel, 'member_removed');
  assert.ok(hook.at - left >= DELAY_MS - 20, `member_removed arrived ${hook.at - left} ms after the disconnect, before the ${DELAY_MS} ms delay`);
  assertEvent(hook, { name: 'member_removed', channel, user_id: '9' });
  assert.ok(!seen((e) => e.name === 'channel_vacated' && e.channel === channel), 'channel_vacated although user 8 is still subscribed');
});

test('client_event: whisper on a private channel → valid webhook with event, data (string) and socket_id', async () => {
  await ready();
  const channel = `private-pt-wh-client-${RUN}`;
  const a = client(authOptions(auth, '1'));
  const b = client(authOptions(auth, '2'));
  const socketA = await connected(a);
  const chA = a.subscribe(channel);
  const chB = b.subscribe(channel);
  await Promise.all([subscribed(chA), subscribed(chB)]);
  const payload = { text: 'hello', n: 1 };
  const delivered = nextCall((cb) => chB.bind('client-x', cb), 5000, 'client-x on the other client');
  assert.equal(chA.trigger('client-x', payload), true, 'pusher-js refused to send the client event');
  assert.deepEqual(await delivered, payload);
  const hook = await webhookFor((e) => e.name === 'client_event' && e.channel === channel, 'client_event');
  assertEvent(hook, { name: 'client_event', channel, event: 'client-x', data: JSON.stringify(payload), socket_id: socketA });
});

test('client_event: whisper on a presence channel → valid webhook that also carries the sender user_id', async () => {
  await ready();
  const channel = `presence-pt-wh-client-${RUN}`;
  const a = client(authOptions(auth, '3'));
  const b = client(authOptions(auth, '4'));
  const socketA = await connected(a);
  const chA = a.subscribe(channel);
  const chB = b.subscribe(channel);
  await Promise.all([subscribed(chA), subscribed(chB)]);
  const payload = { typing: true };
  const delivered = nextCall((cb) => chB.bind('client-typing', cb), 5000, 'client-typing on the other client');
  assert.equal(chA.trigger('client-typing', payload), true, 'pusher-js refused to send the client event');
  assert.deepEqual(await delivered, payload);
  const hook = await webhookFor((e) => e.name === 'client_event' && e.channel === channel, 'client_event');
  assertEvent(hook, {
    name: 'client_event',
    channel,
    event: 'client-typing',
    data: JSON.stringify(payload),
    socket_id: socketA,
    user_id: '3',
  });
});

test('Node SDK: a tampered body, a forged signature or another key make isValid() false', async () => {
  await ready();
  const hook = await webhookFor((e) => e.name === 'channel_occupied', 'any channel_occupied');
  assertValid(hook);
  const ev = hook.events.find((e) => e.name === 'channel_occupied');
  const tamperedBody = hook.body.replace(JSON.stringify(ev.channel), JSON.stringify(`${ev.channel}x`));
  assert.notEqual(tamperedBody, hook.body);
  const check = (headers, rawBody) => serverSdk({ port: nodePort }).webhook({ headers: { ...hook.headers, ...headers }, rawBody }).isValid();
  assert.equal(check({}, tamperedBody), false, 'a changed body still validates');
  assert.equal(check({}, `${hook.body} `), false, 'a body with trailing whitespace still validates');
  const forged = crypto.createHmac('sha256', `${target.secret}-wrong`).update(tamperedBody).digest('hex');
  assert.equal(check({ 'x-pusher-signature': forged }, tamperedBody), false, 'a body signed with another secret validates');
  assert.equal(check({ 'x-pusher-key': `${target.key}-other` }, hook.body), false, 'another key validates');
  assert.equal(check({}, hook.body), true, 'the untouched webhook no longer validates');
});

test('every webhook received: POST, Node SDK-valid, one event per request (batching off), documented names', async () => {
  await ready();
  assert.ok(received.length > 0, 'no webhooks received');
  const names = new Set([...KINDS, 'cache_miss', 'subscription_count']);
  for (const hook of received) {
    const events = assertValid(hook);
    assert.equal(events.length, 1, `batching is off, yet one request carried ${events.length} events: ${hook.body}`);
    for (const e of events) {
      assert.ok(names.has(e.name), `undocumented event name ${e.name}: ${hook.body}`);
      assert.equal(typeof e.channel, 'string', `event without a channel: ${hook.body}`);
    }
  }
});

test('Python SDK (pusher 3.3.4): validate_webhook() accepts every captured webhook and rejects tampered ones', async () => {
  await ready();
  for (const kind of KINDS) assert.ok(seen((e) => e.name === kind), `no ${kind} webhook was captured to check`);
  const python = process.env.PT_PYTHON;
  assert.ok(python, 'PT_PYTHON is not set: run the suite with `node run.mjs`, which creates the virtualenv');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pt-webhooks-'));
  const file = path.join(dir, 'webhooks.json');
  try {
    const captured = received.map((h) => ({ key: h.headers['x-pusher-key'], signature: h.headers['x-pusher-signature'], body: h.body }));
    fs.writeFileSync(file, JSON.stringify(captured));
    const { error, stdout, stderr } = await new Promise((resolve) => {
      execFile(
        python,
        [webhookCheck, file, ...KINDS],
        { env: { ...process.env, PYTHONUNBUFFERED: '1' }, timeout: 30_000, killSignal: 'SIGKILL', maxBuffer: 4 << 20 },
        (err, out, errOut) => resolve({ error: err, stdout: out, stderr: errOut }),
      );
    });
    const output = `--- webhook_check.py stdout ---\n${stdout}--- webhook_check.py stderr ---\n${stderr}`;
    if (error?.killed) assert.fail(`webhook_check.py did not finish within 30 s\n${output}`);
    if (error && typeof error.code !== 'number') assert.fail(`webhook_check.py could not be run: ${error.message}\n${output}`);
    assert.equal(error?.code ?? 0, 0, `webhook_check.py failed\n${output}`);
    assert.match(stdout, /^ok /m, `webhook_check.py reported no checks\n${output}`);
    assert.doesNotMatch(stdout, /^FAIL /m, output);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
