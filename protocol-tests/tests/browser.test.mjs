// A real browser: Debian's Chromium (driven by playwright-core) opens the user-facing example,
// examples/browser/ (index.html + app.js), served by its own examples/browser/serve.mjs, which
// also plays the Laravel app: it serves pusher-js + Laravel Echo from node_modules and answers
// /broadcasting/auth and /broadcasting/user-auth for the user the page names (?user=…, sent as
// an X-Demo-User header). serve.mjs is pointed at the server under test through its CLARION_*
// environment variables; the page joins the example's fixed channels: demo, presence-demo and
// private-demo.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { echoClient, serverSdk, subscribed, closeAll, target } from '../lib/target.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const SERVE = path.resolve(root, '..', 'examples', 'browser', 'serve.mjs');
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.join(root, 'test-output', 'browser.png');
const PUBLIC = 'demo';
const PRESENCE = 'demo'; // Echo adds "presence-"
const ME = 'alice'; // the page's user (?user=alice)
const WAIT = 10_000;

/** Starts examples/browser/serve.mjs on a free port against the target; resolves with its URL. */
function startExampleServer() {
  const child = spawn(process.execPath, [SERVE], {
    env: {
      ...process.env,
      CLARION_URL: `http://${target.host}:${target.port}`,
      CLARION_APP_ID: target.appId,
      CLARION_APP_KEY: target.key,
      CLARION_APP_SECRET: target.secret,
      PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const close = () =>
    new Promise((r) => {
      if (child.exitCode !== null || child.signalCode !== null) return r();
      child.once('exit', () => r());
      child.kill();
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`${SERVE} printed no URL within ${WAIT} ms; output:\n${out}`));
    }, WAIT);
    const onData = (chunk) => {
      out += chunk;
      const m = /(http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], close, output: () => out });
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', (c) => (out += c));
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${SERVE} exited (${signal ?? code}) before printing its URL; output:\n${out}`));
    });
  });
}

/** Echo/pusher-js options that authorize through the example's endpoints as `user`. */
function exampleAuth(user) {
  const headers = { 'X-Demo-User': user };
  return {
    authEndpoint: `${site.url}/broadcasting/auth`,
    auth: { headers },
    userAuthentication: { endpoint: `${site.url}/broadcasting/user-auth`, transport: 'ajax', headers },
    channelAuthorization: { endpoint: `${site.url}/broadcasting/auth`, transport: 'ajax', headers },
  };
}

let site, siteError, browser, page, launchError;
const pageLog = [];

before(async () => {
  try {
    site = await startExampleServer();
  } catch (e) {
    siteError = e.message;
  }
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
});

/** The page, opened once by the first test that needs it; fails clearly without a browser. */
async function openPage() {
  assert.ok(site, `the example server did not start: ${siteError}`);
  assert.ok(browser, launchError ?? 'no browser');
  if (page) return page;
  page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  page.setDefaultTimeout(WAIT);
  page.on('console', (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => pageLog.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => pageLog.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  await page.goto(`${site.url}/?${new URLSearchParams({ user: ME })}`);
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
        .evaluate(() =>
          JSON.stringify({
            connection: document.getElementById('state').dataset.state,
            events: document.getElementById('events').dataset.state,
            members: document.getElementById('members').dataset.state,
            memberList: document.getElementById('members').innerText,
            errors: document.getElementById('errors').innerText,
          }),
        )
        .catch((err) => `(page state unavailable: ${err.message})`);
    }
    e.message += `\npage state: ${state}\npage log:\n${pageLog.join('\n') || '(empty)'}\nserve.mjs output:\n${site?.output() || '(empty)'}`;
    throw e;
  }
}

const memberIds = (p) => p.$$eval('#members li', (lis) => lis.map((li) => li.dataset.id).sort());

test('Chromium: Echo subscribes to a public channel and shows an event triggered by the Node SDK', async () => {
  const p = await openPage();
  await withDiagnostics(async () => {
    await p.waitForSelector('#state[data-state="connected"]');
    await p.waitForSelector('#events[data-state="subscribed"]', { state: 'attached' });
    const res = await serverSdk().trigger(PUBLIC, 'browser-news', { headline: 'Hello, Chromium ✓', n: 42 });
    assert.equal(res.status, 200);
    const li = await p.waitForSelector('#events li[data-event="browser-news"]');
    // "<local time> browser-news {…}"
    assert.match(await li.textContent(), /^\S.* browser-news \{"headline":"Hello, Chromium ✓","n":42\}$/);
    assert.equal(await p.locator('#events li').count(), 1, 'exactly one event shown');
  });
});

test('Chromium: presence through the auth endpoint lists the page itself, then a Node member who joins', async () => {
  const p = await openPage();
  await withDiagnostics(async () => {
    await p.waitForSelector('#members[data-state="subscribed"]', { state: 'attached' });
    assert.deepEqual(await memberIds(p), [ME], 'the page sees only itself');
    assert.equal(await p.textContent(`#members li[data-id="${ME}"]`), `${ME} (you)`);

    const other = echoClient(exampleAuth('bob'));
    other.join(PRESENCE);
    await subscribed(other.connector.pusher.channel(`presence-${PRESENCE}`));
    await p.waitForSelector('#members li[data-id="bob"]');
    assert.deepEqual(await memberIds(p), [ME, 'bob']);
    assert.equal(await p.textContent('#members li[data-id="bob"]'), 'bob');

    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await p.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(fs.statSync(SCREENSHOT).size > 1000, 'screenshot written');
  });
});

test('Chromium: a presence member who disconnects disappears from the page', async () => {
  const p = await openPage();
  await withDiagnostics(async () => {
    await p.waitForSelector('#members[data-state="subscribed"]', { state: 'attached' });
    const leaver = echoClient(exampleAuth('carol'));
    leaver.join(PRESENCE);
    await subscribed(leaver.connector.pusher.channel(`presence-${PRESENCE}`));
    await p.waitForSelector('#members li[data-id="carol"]');
    leaver.disconnect();
    await p.waitForSelector('#members li[data-id="carol"]', { state: 'detached' });
    const ids = await memberIds(p);
    assert.ok(ids.includes(ME) && !ids.includes('carol'), `members now: ${ids}`);
    assert.equal(await p.getAttribute('#state', 'data-state'), 'connected');
  });
});
