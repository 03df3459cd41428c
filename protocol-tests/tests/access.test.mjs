// Who may hold a connection (docs/protocol.md §3.5 authorized connections, §3.6 origins), with
// pusher-js 8 and Laravel Echo 2 in Node and pusher-js in Chromium. A refusal is pusher:error
// 4009 and close 4009, which pusher-js takes as final: its state ends 'disconnected' and it never
// tries again. That is checked on the wire too: every refused client connects through a TCP proxy
// (lib/tcp-proxy.mjs) that counts the connections it forwards, and after the refusal the test
// waits 3 s (pusher-js retries a close it may retry after 1 s) for a second one that must not come.
//
// GUARDED app: authorized_connections_timeout = 1. ORIGINS app: allowed_origins = ["localhost"],
// allow_missing_origin = false (lib/features.mjs). pusher-js in Node sends no Origin header (its
// faye-websocket client is created with the URL alone), so it is refused on the ORIGINS app as a
// client without an Origin; Chromium sends the page's origin, which the test chooses by opening
// the same page as http://localhost:… (allowed) or http://127.0.0.1:… (refused).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { target, pusherClient, echoClient, serverSdk, connected, subscribed, nextCall, nextPort, waitFor, sleep, closeAll, unique } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';
import { startTcpProxy } from '../lib/tcp-proxy.mjs';
import { launchChromium } from '../lib/chromium.mjs';
import { GUARDED, ORIGINS, featuresSkip, sdkFor } from '../lib/features.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const WAIT = 10_000;
const NO_RETRY_MS = 3000;

let auth = null;
let site = null;
let browser = null;
let launchError = null;
const proxies = [];

/** Serves pages/origin.html and the pusher-js build it loads, on 127.0.0.1 (also reached as localhost). */
async function startSite() {
  const files = {
    '/': [path.join(root, 'pages', 'origin.html'), 'text/html; charset=utf-8'],
    '/node_modules/pusher-js/dist/web/pusher.js': [path.join(root, 'node_modules', 'pusher-js', 'dist', 'web', 'pusher.js'), 'text/javascript'],
  };
  const server = http.createServer((req, res) => {
    const file = files[new URL(req.url, 'http://x').pathname];
    if (!file) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': file[1], 'cache-control': 'no-store' });
    res.end(fs.readFileSync(file[0]));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.address().port, close: () => new Promise((r) => server.close(r)) };
}

before(async () => {
  if (featuresSkip) return;
  auth = await startAuthServer({ sdk: sdkFor(GUARDED) });
  site = await startSite();
  ({ browser, error: launchError } = await launchChromium());
});

after(async () => {
  closeAll();
  await browser?.close().catch(() => {});
  await Promise.all(proxies.map((p) => p.close()));
  await site?.close();
  await auth?.close();
});

/** A counting TCP proxy in front of the next node. */
async function proxied() {
  const proxy = await startTcpProxy(nextPort(), target.host);
  proxies.push(proxy);
  return proxy;
}

/**
 * pusher-js's state changes and the codes of the errors it surfaces. (The constructor has
 * already moved it to 'connecting', so the states start after that.)
 */
function observe(p) {
  const seen = { states: [], codes: [] };
  p.connection.bind('state_change', ({ current }) => seen.states.push(current));
  p.connection.bind('error', (e) => seen.codes.push(e?.data?.code ?? e?.error?.data?.code ?? null));
  return seen;
}

/**
 * On a refused close pusher-js calls close() on its already closed Node WebSocket
 * (faye-websocket), which arms a 30 s timer nothing clears; it would only keep this test process
 * alive, so let the process exit without it.
 */
function releaseCloseTimer(socket) {
  socket?._closeTimer?.unref?.();
}

test(
  'authorized_connections_timeout: pusher-js that only subscribes to a public channel gets pusher:error 4009 and close 4009 after the timeout, and does not reconnect',
  { skip: featuresSkip },
  async () => {
    const proxy = await proxied();
    const p = pusherClient({ key: GUARDED.key, wsPort: proxy.port, wssPort: proxy.port });
    const seen = observe(p);
    await connected(p);
    const connectedAt = Date.now();
    const socket = p.connection.connection?.transport?.socket;
    await subscribed(p.subscribe(unique('pt-public'))); // a public subscription does not authorize
    let closedAfter;
    try {
      await waitFor(() => p.connection.state !== 'connected', WAIT, 'the close at the timeout');
      closedAfter = Date.now() - connectedAt;
      await sleep(NO_RETRY_MS);
    } finally {
      releaseCloseTimer(socket);
    }
    assert.ok(closedAfter >= GUARDED.timeoutSeconds * 1000 - 150, `closed ${closedAfter} ms after connecting`);
    assert.deepEqual(seen.states, ['connected', 'disconnected']);
    // pusher-js surfaces the pusher:error message, the close and its "refused" action each as an
    // error event: every one of them must carry 4009.
    assert.ok(seen.codes.length > 0, 'no error surfaced');
    assert.deepEqual([...new Set(seen.codes)], [4009], `codes: ${seen.codes}`);
    assert.equal(proxy.routed.length, 1, `pusher-js connected ${proxy.routed.length} times`);
  },
);

test(
  'authorized_connections_timeout: pusher-js that signs in, and Echo that subscribes to a private channel, stay connected past the timeout',
  { skip: featuresSkip },
  async () => {
    const signer = pusherClient({ key: GUARDED.key, ...authOptions(auth, '61') });
    await connected(signer);
    const signerSeen = observe(signer);
    signer.signin();
    await waitFor(() => signer.user.serverToUserChannel, WAIT, 'pusher:signin_success');
    await subscribed(signer.user.serverToUserChannel);

    const name = unique('pt-guarded');
    const echo = echoClient({ key: GUARDED.key, ...authOptions(auth, '62') });
    const echoSeen = observe(echo.connector.pusher);
    const got = nextCall((cb) => echo.private(name).listen('.after-timeout', cb), WAIT * 2, 'an event after the timeout');
    await subscribed(echo.connector.pusher.channel(`private-${name}`));

    await sleep(GUARDED.timeoutSeconds * 1000 + 1000);
    const sdk = serverSdk(sdkFor(GUARDED));
    assert.equal((await sdk.trigger(`private-${name}`, 'after-timeout', { ok: true })).status, 200);
    assert.deepEqual(await got, { ok: true });
    const toUser = nextCall((cb) => signer.user.bind('after-timeout', cb), WAIT, 'a message to the signed-in user');
    await sdk.sendToUser('61', 'after-timeout', { ok: true });
    assert.deepEqual(await toUser, { ok: true });
    assert.deepEqual(signerSeen, { states: [], codes: [] });
    assert.deepEqual(echoSeen.codes, []);
    assert.equal(echo.connector.pusher.connection.state, 'connected');
  },
);

test(
  'allowed_origins without allow_missing_origin: pusher-js in Node (no Origin header) gets 4009 and does not reconnect',
  { skip: featuresSkip },
  async () => {
    const proxy = await proxied();
    const p = pusherClient({ key: ORIGINS.key, wsPort: proxy.port, wssPort: proxy.port });
    const seen = observe(p);
    await waitFor(() => seen.codes.length > 0, WAIT, 'the refusal');
    await sleep(NO_RETRY_MS);
    assert.deepEqual(seen.codes, [4009]);
    assert.ok(!seen.states.includes('connected'), `states: ${seen.states}`);
    assert.equal(p.connection.state, 'disconnected', `states: ${seen.states}`);
    assert.equal(proxy.routed.length, 1, `pusher-js connected ${proxy.routed.length} times`);
  },
);

test(
  'allowed_origins in Chromium: pusher-js on a page from an allowed origin connects; from another origin it gets 4009 and does not reconnect',
  { skip: featuresSkip },
  async () => {
    assert.ok(browser, launchError ?? 'no browser');
    const open = async (host, proxy) => {
      const page = await browser.newPage();
      page.setDefaultTimeout(WAIT);
      const q = new URLSearchParams({ key: ORIGINS.key, wsHost: target.host, wsPort: String(proxy.port) });
      await page.goto(`http://${host}:${site.port}/?${q}`);
      return page;
    };
    const report = (page) => page.evaluate(() => window.report);

    const allowedProxy = await proxied();
    const allowed = await open('localhost', allowedProxy);
    await allowed.waitForFunction(() => window.report.states.includes('connected'));
    const refusedProxy = await proxied();
    const refused = await open('127.0.0.1', refusedProxy);
    await refused.waitForFunction(() => window.report.codes.length > 0);
    await sleep(NO_RETRY_MS);

    const ok = await report(allowed);
    assert.deepEqual(ok.states, ['connected'], JSON.stringify(ok));
    assert.deepEqual(ok.codes, []);
    const no = await report(refused);
    assert.deepEqual(no.codes, [4009], JSON.stringify(no));
    assert.ok(!no.states.includes('connected'), JSON.stringify(no));
    assert.equal(no.states[no.states.length - 1], 'disconnected', JSON.stringify(no));
    assert.equal(refusedProxy.routed.length, 1, `pusher-js connected ${refusedProxy.routed.length} times from the refused origin`);
    await allowed.close();
    await refused.close();
  },
);
