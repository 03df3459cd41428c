// Missed-message recovery in a real browser: Debian's Chromium (playwright-core) opens
// pages/recovery.html, which loads pusher-js 8, Laravel Echo 2 and the recovery plugin
// (clients/echo-recovery/index.mjs) as the files those packages ship, from this suite's
// node_modules and the repository, served by this test's own static server (no CDN). The
// server also plays the Laravel app's /broadcasting/auth, so the page is same-origin with it.
// The page's WebSocket goes through a TCP proxy (lib/tcp-proxy.mjs) that the test cuts.
//
// 1. The proxy drops the page's connection and holds its reconnection while events are
//    published: the page gets every event once, in order, then clarion:recovery
//    {recovered:true}.
// 2. persist: 'session': the position is in sessionStorage; a reload (whose new connection the
//    proxy holds while events are published) resumes from it and recovers those events.
//
// Skipped against another server (PT_EXTERNAL=1; see lib/recovery.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { target, serverSdk } from '../lib/target.mjs';
import { startTcpProxy } from '../lib/tcp-proxy.mjs';
import { launchChromium } from '../lib/chromium.mjs';
import { recoverySkip, recordedName, BOOKING, upTo } from '../lib/recovery.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const repo = path.resolve(root, '..');
const WAIT = 15_000;

// What the static server serves: the page, and the three packages' files it imports.
const FILES = {
  '/': path.join(root, 'pages', 'recovery.html'),
  '/node_modules/pusher-js/dist/web/pusher.js': path.join(root, 'node_modules', 'pusher-js', 'dist', 'web', 'pusher.js'),
  '/node_modules/laravel-echo/dist/echo.js': path.join(root, 'node_modules', 'laravel-echo', 'dist', 'echo.js'),
  '/clients/echo-recovery/index.mjs': path.join(repo, 'clients', 'echo-recovery', 'index.mjs'),
};

let site = null;
let proxy = null;
let browser = null;
let launchError = null;
const contexts = [];

/** The static server: FILES, and POST /broadcasting/auth signing like Laravel's Broadcast::routes(). */
async function startSite() {
  const sdk = serverSdk({ port: target.port });
  const server = http.createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    if (req.method === 'GET' && FILES[pathname]) {
      const type = pathname === '/' ? 'text/html; charset=utf-8' : 'text/javascript; charset=utf-8';
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
      return res.end(fs.readFileSync(FILES[pathname]));
    }
    if (req.method === 'POST' && pathname === '/broadcasting/auth') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const form = new URLSearchParams(body);
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(sdk.authorizeChannel(form.get('socket_id'), form.get('channel_name'))));
    }
    res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

before(async () => {
  if (recoverySkip) return;
  site = await startSite();
  // The page talks to the first node (in a cluster, events are published through both).
  proxy = await startTcpProxy(target.port, target.host);
  ({ browser, error: launchError } = await launchChromium());
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close().catch(() => {});
  await proxy?.close();
  await site?.close();
});

/** A fresh page (its own context, so its own sessionStorage) subscribed to a new recorded channel. */
async function openPage(persist = 'none') {
  assert.ok(browser, launchError ?? 'no browser');
  const context = await browser.newContext();
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const log = [];
  page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  const name = recordedName('chromium');
  const query = new URLSearchParams({ key: target.key, wsHost: target.host, wsPort: String(proxy.port), channel: name, persist });
  await page.goto(`${site.url}/?${query}`);
  const p = { page, log, name, channel: `private-${name}` };
  await until(p, (r, channel) => r.subscribed === 1 && window.recovery.position(channel), 'the subscription and its head position');
  return p;
}

/** Waits until `fn(window.report, channel)` is truthy in the page; the page's report and log on failure. */
async function until(p, fn, what) {
  try {
    await p.page.waitForFunction(`window.report && (${fn})(window.report, ${JSON.stringify(p.channel)})`, null, { timeout: WAIT });
  } catch (e) {
    const report = await p.page.evaluate(() => JSON.stringify(window.report)).catch((err) => `(unavailable: ${err.message})`);
    throw new Error(`timed out waiting for ${what}\npage report: ${report}\npage log:\n${p.log.join('\n') || '(empty)'}`);
  }
}

const report = (p) => p.page.evaluate(() => window.report);
const publish = (p, n) => serverSdk().trigger(p.channel, BOOKING, { n });

test(
  'Chromium: pusher-js + Echo + the plugin as ES modules; a cut connection gets the events published meanwhile once, in order, then recovered:true',
  { skip: recoverySkip },
  async () => {
    const p = await openPage();
    for (const n of [1, 2]) await publish(p, n);
    await until(p, (r) => r.events.length === 2, 'the first two events, live');

    // The network goes (no close frame); the page's reconnection waits at the proxy.
    assert.equal(proxy.cut({ hold: true }), 1, 'the proxy dropped the page connection');
    await until(p, (r) => r.states.at(-1) !== 'connected', 'the page to notice the cut');
    for (const n of [3, 4, 5, 6]) await publish(p, n);
    proxy.release();

    await until(p, (r) => r.markers.length === 1, 'the recovery marker');
    await publish(p, 7);
    await until(p, (r) => r.events.length >= 7, 'the next event, live');
    const r = await report(p);
    assert.deepEqual(r.events, upTo(7), 'every event exactly once, in publication order');
    assert.deepEqual(r.markers, [{ recovered: true, replayed: 4 }]);
    assert.deepEqual(r.results, [{ channel: p.channel, recovered: true, replayed: 4 }], "the plugin's own event");
    assert.equal(r.subscribed, 2, 'subscribed again after the reconnect');
    assert.deepEqual(r.errors, []);
    assert.deepEqual(p.log.filter((l) => l.startsWith('pageerror')), []);
  },
);

test(
  "Chromium: persist: 'session' keeps the position in sessionStorage; a reload resumes from it and recovers what was published while the page was away",
  { skip: recoverySkip },
  async () => {
    const p = await openPage('session');
    for (const n of [1, 2]) await publish(p, n);
    await until(p, (r) => r.events.length === 2, 'the first two events, live');
    const stored = () => p.page.evaluate((ch) => JSON.parse(sessionStorage.getItem(`clarion-recovery:${ch}`)), p.channel);
    const before = await stored();
    assert.equal(before?.offset, 2, `sessionStorage: ${JSON.stringify(before)}`);

    // Reload; the new page's connection waits at the proxy while three more are published.
    proxy.hold();
    await p.page.reload();
    for (const n of [3, 4, 5]) await publish(p, n);
    proxy.release();

    await until(p, (r) => r.markers.length === 1, 'the recovery marker on the reloaded page');
    const r = await report(p);
    assert.deepEqual(r.events, [3, 4, 5], 'the reloaded page gets what it missed, once, in order');
    assert.deepEqual(r.markers, [{ recovered: true, replayed: 3 }]);
    const after = await stored();
    assert.equal(after.epoch, before.epoch);
    assert.equal(after.offset, 5, 'sessionStorage follows');
    assert.deepEqual(p.log.filter((l) => l.startsWith('pageerror')), []);
  },
);
