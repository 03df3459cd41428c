// A real browser: Debian's Chromium (driven by playwright-core) opens the user-facing example,
// examples/browser/ (index.html + app.js), served by its own examples/browser/serve.mjs, which
// also plays the Laravel app: it serves pusher-js + Laravel Echo from node_modules and answers
// /broadcasting/auth and /broadcasting/user-auth for the user the page names (?user=…, sent as
// an X-Demo-User header). serve.mjs is pointed at the server under test through its CLARION_*
// environment variables; the page joins the example's fixed channels: demo, presence-demo and
// private-demo. The page loads the recovery plugin (clients/echo-recovery) as examples/vue does;
// run.mjs's config records `demo`, so the last test checks the page's recovery line (skipped
// against another server, like every recovery test: lib/recovery.mjs).
//
// The page also shows the viewer count of `demo` (Echo .listen('.pusher:subscription_count')) and
// which of the demo team is online (pusher.user.watchlist; serve.mjs signs the team into the
// user_data as a watchlist), so serve.mjs is pointed at the FEATURES app (lib/features.mjs:
// enable_subscription_count, enable_watchlist_events, `demo` recorded too). Against another
// server (PT_EXTERNAL=1, without PT_FEATURES=1) it uses the main app and those two checks are
// skipped.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../lib/chromium.mjs';
import { startExampleServer } from '../lib/example-site.mjs';
import { echoClient, pusherClient, serverSdk, subscribed, connected, closeAll, target } from '../lib/target.mjs';
import { recoverySkip, purgeHistory } from '../lib/recovery.mjs';
import { FEATURES, featuresSkip, sdkFor } from '../lib/features.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const SCREENSHOT = path.join(root, 'test-output', 'browser.png'); // and browser-recovery.png
const PUBLIC = 'demo';
const PRESENCE = 'demo'; // Echo adds "presence-"
const ME = 'alice'; // the page's user (?user=alice)
const WAIT = 10_000;
/** The app the page uses: the FEATURES app, or the main one when it is not there. */
const APP = featuresSkip ? sdkFor(target) : sdkFor(FEATURES);
const sdk = () => serverSdk(APP);

/** Starts examples/browser/serve.mjs on a free port against the target; resolves with its URL. */
const startSite = () =>
  startExampleServer({
    ...process.env,
    CLARION_URL: `http://${target.host}:${target.port}`,
    CLARION_APP_ID: APP.appId,
    CLARION_APP_KEY: APP.key,
    CLARION_APP_SECRET: APP.secret,
  });

/** Echo/pusher-js options that authorize through the example's endpoints as `user`. */
function exampleAuth(user) {
  const headers = { 'X-Demo-User': user };
  return {
    key: APP.key,
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
    site = await startSite();
  } catch (e) {
    siteError = e.message;
  }
  ({ browser, error: launchError } = await launchChromium());
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
            recovery: document.getElementById('recovery').innerText,
            memberList: document.getElementById('members').innerText,
            viewers: document.getElementById('viewers').dataset.count,
            team: document.getElementById('team').innerText,
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
    const res = await sdk().trigger(PUBLIC, 'browser-news', { headline: 'Hello, Chromium ✓', n: 42 });
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

/** The page's team list: {id: 'online' | 'offline'}. */
const teamStatus = (p) => p.$$eval('#team li', (lis) => Object.fromEntries(lis.map((li) => [li.dataset.id, li.dataset.status])));

test(
  'Chromium: the page shows who of the team is online (pusher.user.watchlist): a pusher-js client signing in as dave turns him online, its disconnect offline',
  { skip: featuresSkip },
  async () => {
    const p = await openPage();
    await withDiagnostics(async () => {
      // The status at sign-in: nobody else of the team has signed in (the presence members of
      // the tests above joined without signing in).
      await p.waitForSelector('#team li[data-id="dave"]', { state: 'attached' });
      assert.deepEqual(await teamStatus(p), { bob: 'offline', carol: 'offline', dave: 'offline' });

      const dave = pusherClient(exampleAuth('dave'));
      await connected(dave);
      dave.signin();
      await p.waitForSelector('#team li[data-id="dave"][data-status="online"]', { state: 'attached' });
      assert.equal(await p.textContent('#team li[data-id="dave"]'), 'dave: online');
      await p.screenshot({ path: path.join(path.dirname(SCREENSHOT), 'browser-live.png'), fullPage: true });

      dave.disconnect();
      await p.waitForSelector('#team li[data-id="dave"][data-status="offline"]', { state: 'attached' });
      assert.deepEqual(await teamStatus(p), { bob: 'offline', carol: 'offline', dave: 'offline' });
    });
  },
);

test(
  "Chromium: the page shows how many tabs watch demo (Echo .listen('.pusher:subscription_count')): up when a pusher-js client subscribes, down when it unsubscribes",
  { skip: featuresSkip },
  async () => {
    const p = await openPage();
    await withDiagnostics(async () => {
      await p.waitForSelector('#viewers[data-count="1"]', { state: 'attached' });
      assert.equal(await p.textContent('#viewers'), '1 tab');
      const viewer = pusherClient({ key: APP.key });
      await subscribed(viewer.subscribe(PUBLIC));
      await p.waitForSelector('#viewers[data-count="2"]', { state: 'attached' });
      assert.equal(await p.textContent('#viewers'), '2 tabs');
      viewer.unsubscribe(PUBLIC);
      await p.waitForSelector('#viewers[data-count="1"]', { state: 'attached' });
      assert.equal(await p.textContent('#viewers'), '1 tab');
    });
  },
);

test(
  'Chromium: the example page replays the demo events it missed while offline, and shows a reload line when recovery fails (recovered:false)',
  { skip: recoverySkip },
  async () => {
    const p = await openPage();
    await withDiagnostics(async () => {
      await p.waitForSelector('#events[data-state="subscribed"]', { state: 'attached' });
      const offline = async () => {
        await p.evaluate(() => window.echo.connector.pusher.disconnect());
        await p.waitForSelector('#state[data-state="disconnected"]', { state: 'attached' });
      };
      const online = () => p.evaluate(() => window.echo.connector.pusher.connect());
      const shown = () => p.$$eval('#events li[data-event]', (lis) => lis.map((li) => li.dataset.event).reverse()); // oldest first

      // The tab goes offline; two events are published; it comes back and gets both, once.
      const before = await shown();
      await offline();
      for (const name of ['missed-1', 'missed-2']) assert.equal((await sdk().trigger(PUBLIC, name, { while: 'offline' })).status, 200);
      await online();
      await p.waitForSelector('#recovery[data-state="recovered"]');
      assert.deepEqual(await shown(), [...before, 'missed-1', 'missed-2'], 'missed events shown once, in order');
      assert.match(await p.textContent('#recovery'), /2 missed event\(s\) replayed/);

      // Offline again; the channel's history is purged (as a Clarion restart loses memory
      // history); the event published meanwhile cannot be replayed, and the page says so.
      await offline();
      const purge = await purgeHistory(PUBLIC, target.port, APP);
      assert.equal(purge.status, 200, `DELETE history: ${purge.status} ${purge.body}`);
      assert.equal((await sdk().trigger(PUBLIC, 'lost', {})).status, 200);
      await online();
      await p.waitForSelector('#recovery[data-state="failed"]');
      assert.equal(await p.getAttribute('#recovery', 'data-reason'), 'epoch_changed');
      assert.match(await p.textContent('#recovery'), /events published while this tab was away are lost \(epoch_changed\)/);
      assert.equal(await p.locator('#recovery button').textContent(), 'Reload');
      assert.ok(!(await shown()).includes('lost'), 'nothing replayed from another history');
      await p.screenshot({ path: path.join(path.dirname(SCREENSHOT), 'browser-recovery.png'), fullPage: true });

      // Live again.
      assert.equal((await sdk().trigger(PUBLIC, 'after', {})).status, 200);
      await p.waitForSelector('#events li[data-event="after"]');
    });
  },
);
