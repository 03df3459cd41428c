// Clarion's live dashboard (docs/admin-api.md#the-dashboard) in headless Chromium, against a
// Clarion of its own (admin port on, apps in a PostgreSQL database made for the test) with
// traffic from clarion-bench: the numbers on the page match the server's /metrics, and an app
// created with the page's form is served at once. A screenshot goes to
// test-output/dashboard.png. Clarion-only: skipped against another server and in the cluster
// run (the dashboard is one node's view; the single-node run covers it).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../lib/chromium.mjs';
import { freePort } from '../lib/ports.mjs';
import { built } from '../lib/build.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const SCREENSHOT = path.join(root, 'test-output', 'dashboard.png');
const TOKEN = 'dashboard-test-token-0001';
const skip =
  process.env.PT_EXTERNAL === '1'
    ? 'the dashboard is Clarion-only'
    : process.env.PT_CLUSTER === '1'
      ? 'one node: covered by the single-node run'
      : false;

const database = `clarion_dash_${process.pid}`;
let server;
let ports;
let browser;
let launchError;

function psql(sql, db = 'postgres') {
  const r = spawnSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', sql], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `psql ${sql}: ${r.stderr}`);
}

async function metrics() {
  return (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
}

function metric(text, series) {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.split(' ')[1]) : 0;
}

before(async () => {
  if (skip) return;
  psql(`CREATE DATABASE ${database}`);
  psql(
    `CREATE TABLE apps (id varchar(255) PRIMARY KEY, key varchar(255) NOT NULL, secret varchar(255) NOT NULL,
     max_connections integer NOT NULL, enable_client_messages smallint NOT NULL, enabled smallint NOT NULL,
     max_backend_events_per_sec integer NOT NULL, max_client_events_per_sec integer NOT NULL,
     max_read_req_per_sec integer NOT NULL, webhooks json, max_presence_members_per_channel smallint,
     max_presence_member_size_in_kb smallint, max_channel_name_length integer, max_event_channels_at_once smallint,
     max_event_name_length integer, max_event_payload_in_kb smallint, max_event_batch_size smallint,
     enable_user_authentication smallint NOT NULL);
     INSERT INTO apps VALUES ('load', 'load-key', 'load-secret', -1, 1, 1, -1, -1, -1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0)`,
    database,
  );
  ports = { main: await freePort(), metrics: await freePort(), admin: await freePort() };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clarion-dashboard-'));
  const config = path.join(dir, 'clarion.toml');
  fs.writeFileSync(
    config,
    [
      'host = "127.0.0.1"',
      `port = ${ports.main}`,
      `metrics_port = ${ports.metrics}`,
      `admin_port = ${ports.admin}`,
      `admin_token = "${TOKEN}"`,
      'app_store = "postgres"',
      `app_store_url = "postgres://postgres@127.0.0.1:5432/${database}"`,
      'app_store_poll_seconds = 1',
    ].join('\n') + '\n',
  );
  server = spawn(built('clarion'), ['--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  const end = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${ports.main}/ready`)).ok) break;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error('clarion did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  ({ browser, error: launchError } = await launchChromium());
});

after(async () => {
  await browser?.close();
  server?.kill();
  if (!skip) spawnSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-c', `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`]);
});

test('the dashboard shows what /metrics says, live, and creates apps through the admin API', { skip }, async () => {
  assert.ok(browser, launchError);
  // 150 subscribers on 5 channels, 20 events/s for 8 s, from clarion-bench.
  const bench = spawn(
    built('clarion-bench'),
    ['--port', String(ports.main), '--app-id', 'load', '--key', 'load-key', '--secret', 'load-secret',
      'fanout', '--subscribers', '150', '--channels', '5', '--rate', '20', '--duration', '8'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const benchDone = new Promise((resolve) => bench.on('exit', resolve));
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(`http://127.0.0.1:${ports.admin}/`);
  await page.fill('#token', TOKEN);
  await page.click('#connect');
  await page.waitForFunction(() => document.querySelector('#status')?.textContent.startsWith('live'));

  // While the bench holds its 150 connections: the page's count is the gauge's.
  const cell = (field) => page.textContent(`#app-load td[data-field="${field}"]`);
  await page.waitForFunction(() => document.querySelector('#app-load td[data-field="connections"]')?.textContent === '150', null, { timeout: 20_000 });
  assert.equal(metric(await metrics(), 'clarion_connected{app_id="load"}'), 150);
  assert.equal(await cell('channels'), '5');
  assert.match(await cell('busiest'), /fanout-\d \(30\)/);
  await page.waitForFunction(() => Number(document.querySelector('#app-load td[data-field="out-rate"]')?.textContent) > 0);
  // Two samples of history (every 5 s) make the charts' lines.
  await new Promise((r) => setTimeout(r, 5500));
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // After the bench: the totals on the page equal the counters.
  assert.equal(await benchDone, 0, 'clarion-bench ran');
  await new Promise((r) => setTimeout(r, 500));
  const text = await metrics();
  const sent = metric(text, 'clarion_ws_messages_sent_total{app_id="load"}');
  const received = metric(text, 'clarion_ws_messages_received_total{app_id="load"}');
  assert.ok(sent >= 150 * 8 * 20 / 5, `the bench's deliveries were counted (${sent})`);
  await page.waitForFunction(
    (want) => document.querySelector('#app-load td[data-field="totals"]')?.textContent === want,
    `${received} / ${sent}`,
    { timeout: 10_000 },
  );

  // An app created with the page's form is served at once.
  await page.fill('#create input[name="id"]', 'made');
  await page.fill('#create input[name="key"]', 'made-key');
  await page.click('#create button');
  await page.waitForFunction(() => document.querySelector('#message')?.textContent.startsWith('created made'));
  await page.waitForSelector('#app-made');
  const first = await page.evaluate(
    (url) =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(url);
        ws.onmessage = (m) => {
          ws.close();
          resolve(JSON.parse(m.data).event);
        };
        ws.onerror = () => reject(new Error('websocket error'));
      }),
    `ws://127.0.0.1:${ports.main}/app/made-key?protocol=7`,
  );
  assert.equal(first, 'pusher:connection_established');
  await page.close();
});
