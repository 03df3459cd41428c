// Tried as a new user would (issue 20): the marketplace example's `.env`
// (examples/laravel/.env.example) is Clarion's whole configuration (`clarion --env-file`, no
// config file), and the Chromium example (examples/browser/) works against it as it is: Echo in
// the page connects, subscribes through serve.mjs's auth endpoints and shows an event that the
// Laravel app of that `.env` would send (BROADCAST_CONNECTION=pusher: the PUSHER_APP_*
// credentials, through the signed HTTP API).
//
// The one thing the test changes is the port: the `.env` says 6001, which a shared machine may
// have taken, so Clarion gets `--port` (flags win over the file, docs/laravel.md) and serve.mjs
// the matching CLARION_URL, the variable it documents. Everything else is serve.mjs's defaults,
// and the first test checks they are the `.env`'s browser-side values (key, host, port).
//
// Clarion-only (it starts Clarion itself) and one node (the `.env` describes one server):
// skipped against another server and in the cluster run.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { fileURLToPath } from 'node:url';
import Pusher from 'pusher';
import { built } from '../lib/build.mjs';
import { launchChromium } from '../lib/chromium.mjs';
import { startExampleServer } from '../lib/example-site.mjs';
import { freePort } from '../lib/ports.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ENV_FILE = path.resolve(here, '..', '..', 'examples', 'laravel', '.env.example');
const SCREENSHOT = path.resolve(here, '..', 'test-output', 'laravel-env.png');
const WAIT = 10_000;
const skip =
  process.env.PT_EXTERNAL === '1'
    ? 'starts Clarion itself'
    : process.env.PT_CLUSTER === '1'
      ? 'one node: covered by the single-node run'
      : false;

const dotenv = parseEnv(fs.readFileSync(ENV_FILE, 'utf8'));
/** A new user's shell: nothing of Clarion's or Soketi's in it (those would win over the file). */
const shell = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(CLARION|SOKETI)_/.test(k)));

let clarion, clarionLog = '', port, site, browser, launchError, page;
const pageLog = [];

before(async () => {
  if (skip) return;
  port = await freePort();
  clarion = spawn(built('clarion'), ['--env-file', ENV_FILE, '--host', '127.0.0.1', '--port', String(port)], {
    env: shell,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  clarion.stdout.setEncoding('utf8').on('data', (c) => (clarionLog += c));
  clarion.stderr.setEncoding('utf8').on('data', (c) => (clarionLog += c));
  const end = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/up`)).ok) break;
    } catch {
      // not listening yet
    }
    assert.ok(clarion.exitCode === null, `clarion --env-file exited (${clarion.exitCode}):\n${clarionLog}`);
    assert.ok(Date.now() < end, `clarion --env-file did not come up:\n${clarionLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  site = await startExampleServer({ ...shell, CLARION_URL: `http://127.0.0.1:${port}` });
  ({ browser, error: launchError } = await launchChromium());
});

after(async () => {
  await browser?.close().catch(() => {});
  await site?.close();
  clarion?.kill();
});

/** Runs `fn`; on failure, adds the page's state and every log to the error message. */
async function withDiagnostics(fn) {
  try {
    return await fn();
  } catch (e) {
    const state = page
      ? await page
          .evaluate(() =>
            JSON.stringify({
              connection: document.getElementById('state').dataset.state,
              events: document.getElementById('events').dataset.state,
              members: document.getElementById('members').dataset.state,
              errors: document.getElementById('errors').innerText,
            }),
          )
          .catch((err) => `(unavailable: ${err.message})`)
      : '(no page)';
    e.message += `\npage state: ${state}\npage log:\n${pageLog.join('\n') || '(empty)'}\nserve.mjs:\n${site?.output() || '(empty)'}\nclarion:\n${clarionLog || '(empty)'}`;
    throw e;
  }
}

test("the Chromium example's defaults are the marketplace .env's browser-side values", { skip }, async () => {
  // serve.mjs as a new user starts it: no variables at all.
  const plain = await startExampleServer(shell);
  try {
    const config = await (await fetch(`${plain.url}/config.json`)).json();
    assert.deepEqual(config, {
      key: dotenv.PUSHER_APP_KEY,
      wsHost: dotenv.VITE_PUSHER_HOST,
      wsPort: Number(dotenv.PUSHER_PORT),
      forceTLS: dotenv.PUSHER_SCHEME === 'https',
    });
  } finally {
    await plain.close();
  }
});

test(
  'clarion --env-file serves the marketplace .env: Echo in Chromium connects, joins, and shows an event sent with PUSHER_APP_*',
  { skip },
  async () => {
    assert.ok(browser, launchError ?? 'no browser');
    page = await browser.newPage({ viewport: { width: 900, height: 640 } });
    page.setDefaultTimeout(WAIT);
    page.on('console', (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => pageLog.push(`pageerror: ${e.message}`));
    await withDiagnostics(async () => {
      await page.goto(`${site.url}/?user=alice`);
      await page.waitForSelector('#state[data-state="connected"]', { state: 'attached' });
      await page.waitForSelector('#events[data-state="subscribed"]', { state: 'attached' });
      // Presence goes through serve.mjs's /broadcasting/auth, signed with its default secret:
      // joined only if that is the secret Clarion took from the .env.
      await page.waitForSelector('#members[data-state="subscribed"]', { state: 'attached' });
      assert.equal(await page.textContent('#members li[data-id="alice"]'), 'alice (you)');

      assert.equal(dotenv.BROADCAST_CONNECTION, 'pusher');
      const laravel = new Pusher({
        appId: dotenv.PUSHER_APP_ID,
        key: dotenv.PUSHER_APP_KEY,
        secret: dotenv.PUSHER_APP_SECRET,
        host: '127.0.0.1',
        port: String(port),
        useTLS: dotenv.PUSHER_SCHEME === 'https',
      });
      const res = await laravel.trigger('demo', 'ReservationCreated', { reservation: { id: 7 } });
      assert.equal(res.status, 200);
      const li = await page.waitForSelector('#events li[data-event="ReservationCreated"]');
      assert.match(await li.textContent(), / ReservationCreated \{"reservation":\{"id":7\}\}$/);

      assert.equal(await page.textContent('#errors'), '', 'the page shows no error');
      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
    });
  },
);
