// Server restart: pusher-js must reconnect by itself, re-subscribe every channel (re-authorizing
// the private one) and keep receiving. Starts its own server with PT_SERVER_CMD on a free port.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { target, pusherClient, serverSdk, waitFor, sleep, closeAll } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';
import { freePort } from '../lib/ports.mjs';

let auth;
let server = null;
before(async () => {
  auth = await startAuthServer();
});
after(async () => {
  closeAll();
  await stopServer('SIGTERM');
  await auth.close();
});


/** Starts PT_SERVER_CMD on `port` in its own process group, so it can be killed as a whole. */
function startServer(port) {
  const cmd = target.serverCmd.replaceAll('{port}', String(port));
  const child = spawn('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'inherit'], detached: true });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  server = { child, exited };
  return server;
}

/** Kills the server started by startServer (its process group) and waits for it to exit. */
async function stopServer(signal) {
  if (!server) return;
  const { child, exited } = server;
  server = null;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), 5000)));
  const result = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  if (result === 'timeout') {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await exited;
  }
}

/** Waits until the server answers HTTP on `port` (any status: only "is it listening" matters). */
async function waitUp(port, ms = 15000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (server && server.child.exitCode !== null) throw new Error(`server exited with ${server.child.exitCode}`);
    try {
      await fetch(`http://${target.host}:${port}/up`);
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`server on port ${port} did not come up within ${ms} ms`);
}

/** Counts subscription_succeeded on a pusher-js channel and records its events named `event`. */
function watch(channel, event) {
  const w = { subscriptions: 0, events: [] };
  channel.bind('pusher:subscription_succeeded', () => (w.subscriptions += 1));
  channel.bind(event, (d) => w.events.push(d));
  return w;
}

test('pusher-js reconnects by itself after a server restart, re-subscribes and receives again', async () => {
  assert.ok(
    target.serverCmd,
    'PT_SERVER_CMD is empty: this test needs a shell command that starts the server under test on the port {port} (run.mjs sets it for Clarion)',
  );
  const port = await freePort();
  startServer(port);
  await waitUp(port);
  const sdk = serverSdk({ port });

  const p = pusherClient({ ...authOptions(auth, '1'), wsPort: port, wssPort: port });
  const states = [];
  p.connection.bind('state_change', ({ current }) => states.push(current));
  const pub = watch(p.subscribe('pt-reconnect-public'), 'tick');
  const priv = watch(p.subscribe('private-pt-reconnect'), 'tick');
  await waitFor(() => pub.subscriptions === 1 && priv.subscriptions === 1, 5000, 'both subscriptions');
  const firstSocket = p.connection.socket_id;
  assert.match(firstSocket, /^\d+\.\d+$/);
  await sdk.trigger(['pt-reconnect-public', 'private-pt-reconnect'], 'tick', { n: 1 });
  await waitFor(() => pub.events.length === 1 && priv.events.length === 1, 5000, 'the first events');

  // Kill the server without any goodbye, as a crash or an OOM kill would, and start a new one
  // on the same port at once, as a supervisor would. pusher-js retries 1 s after an unexpected
  // close; if that attempt fails too (a slow start), its 15 s attempt timeout comes first, so
  // the wait below allows for one missed attempt.
  await stopServer('SIGKILL');
  startServer(port);
  await waitUp(port);

  await waitFor(
    () => p.connection.state === 'connected' && p.connection.socket_id !== firstSocket,
    20000,
    `pusher-js to reconnect (states: ${states.join(' → ')})`,
  );
  assert.match(p.connection.socket_id, /^\d+\.\d+$/);
  await waitFor(() => pub.subscriptions === 2 && priv.subscriptions === 2, 5000, 'both channels to be subscribed again');

  await sdk.trigger(['pt-reconnect-public', 'private-pt-reconnect'], 'tick', { n: 2 });
  await waitFor(() => pub.events.length === 2 && priv.events.length === 2, 5000, 'the events after the restart');
  assert.deepEqual(pub.events, [{ n: 1 }, { n: 2 }]);
  assert.deepEqual(priv.events, [{ n: 1 }, { n: 2 }]);
  assert.ok(!states.includes('failed'), `states: ${states.join(' → ')}`);
});
