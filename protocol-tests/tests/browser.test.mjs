// A real browser: Debian's Chromium (driven by playwright-core) opens browser/index.html, which
// runs pusher-js + Laravel Echo from node_modules against the server, authorizes a presence
// channel through the Laravel-style auth endpoint (cross-origin, a CORS "simple" request: the
// page sends no custom headers, so the auth server's user is its default, "1").
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { echoClient, serverSdk, subscribed, closeAll, target } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.join(root, 'test-output', 'browser.png');
const PUBLIC = 'pt-browser-news';
const PRESENCE = 'pt-browser-room'; // Echo adds "presence-"
const WAIT = 10_000;

// The only files the static server hands out.
const FILES = {
  '/': ['browser/index.html', 'text/html; charset=utf-8'],
  '/index.html': ['browser/index.html', 'text/html; charset=utf-8'],
  '/app.js': ['browser/app.js', 'text/javascript; charset=utf-8'],
  '/vendor/pusher.min.js': ['node_modules/pusher-js/dist/web/pusher.min.js', 'text/javascript; charset=utf-8'],
  '/vendor/echo.iife.js': ['node_modules/laravel-echo/dist/echo.iife.js', 'text/javascript; charset=utf-8'],
};

function startStaticServer() {
  const server = http.createServer((req, res) => {
    const file = FILES[new URL(req.url, 'http://x').pathname];
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not found');
    }
    fs.readFile(path.join(root, file[0]), (err, body) => {
      if (err) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        return res.end(String(err));
      }
      res.writeHead(200, { 'content-type': file[1], 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) }),
    ),
  );
}

let auth, site, browser, page, launchError;
const pageLog = [];

before(async () => {
  auth = await startAuthServer();
  site = await startStaticServer();
  if (!fs.existsSync(CHROMIUM)) {
    launchError = `${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)`;
    return;
  }
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  } catch (e) {
    launchError = `could not launch ${CHROMIUM}: ${e.message}`;
  }
});

after(async () => {
  closeAll();
  await browser?.close().catch(() => {});
  await site?.close();
  await auth?.close();
});

/** The page, opened once by the first test that needs it; fails clearly without a browser. */
async function openPage() {
  assert.ok(browser, launchError ?? 'no browser');
  if (page) return page;
  page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  page.setDefaultTimeout(WAIT);
  page.on('console', (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => pageLog.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => pageLog.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  const q = new URLSearchParams({
    host: target.host,
    port: String(target.port),
    key: target.key,
    auth: `${auth.url}/broadcasting/auth`,
    channel: PUBLIC,
    presence: PRESENCE,
  });
  await page.goto(`${site.url}/?${q}`);
  return page;
}

/** Runs `fn`; on failure, adds the page's state and log to the error message. */
async function withDiagnostics(fn) {
  try {
    return await fn();
  } catch (e) {
    let state = '';
    if (page) {
      state = await page
        .evaluate(() => JSON.stringify({ ...document.body.dataset, errors: document.getElementById('errors').innerText }))
        .catch((err) => `(page state unavailable: ${err.message})`);
    }
    e.message += `\npage state: ${state}\npage log:\n${pageLog.join('\n') || '(empty)'}`;
    throw e;
  }
}

const memberIds = (p) => p.$$eval('#members li', (lis) => lis.map((li) => li.dataset.id).sort());

test('Chromium: Echo subscribes to a public channel and shows an event triggered by the Node SDK', async () => {
  const p = await openPage();
  await withDiagnostics(async () => {
    await p.waitForSelector('body[data-connection="connected"]');
    await p.waitForSelector('body[data-public="subscribed"]');
    const res = await serverSdk().trigger(PUBLIC, 'browser-news', { headline: 'Hello, Chromium ✓', n: 42 });
    assert.equal(res.status, 200);
    const li = await p.waitForSelector('#events li[data-event="browser-news"]');
    assert.equal(await li.textContent(), '.browser-news {"headline":"Hello, Chromium ✓","n":42}');
    assert.equal(await p.locator('#events li').count(), 1, 'exactly one event shown');
  });
});

test('Chromium: presence through the auth endpoint lists the page itself, then a Node member who joins', async () => {
  const p = await openPage();
  await withDiagnostics(async () => {
    await p.waitForSelector('body[data-presence="subscribed"]');
    assert.deepEqual(await memberIds(p), ['1'], 'the page (auth server user 1) sees only itself');
    assert.equal(await p.textContent('#members li[data-id="1"]'), '1 User 1');

    const other = echoClient(authOptions(auth, '2'));
    other.join(PRESENCE);
    await subscribed(other.connector.pusher.channel(`presence-${PRESENCE}`));
    await p.waitForSelector('#members li[data-id="2"]');
    assert.deepEqual(await memberIds(p), ['1', '2']);
    assert.equal(await p.textContent('#members li[data-id="2"]'), '2 User 2');

    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await p.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(fs.statSync(SCREENSHOT).size > 1000, 'screenshot written');
  });
});

test('Chromium: a presence member who disconnects disappears from the page', async () => {
  const p = await openPage();
  await withDiagnostics(async () => {
    await p.waitForSelector('body[data-presence="subscribed"]');
    const leaver = echoClient(authOptions(auth, '3'));
    leaver.join(PRESENCE);
    await subscribed(leaver.connector.pusher.channel(`presence-${PRESENCE}`));
    await p.waitForSelector('#members li[data-id="3"]');
    leaver.disconnect();
    await p.waitForSelector('#members li[data-id="3"]', { state: 'detached' });
    const ids = await memberIds(p);
    assert.ok(ids.includes('1') && !ids.includes('3'), `members now: ${ids}`);
    assert.equal(await p.getAttribute('body', 'data-connection'), 'connected');
  });
});
