// The new-connection limit per client address as pusher-js lives it (docs/limits.md):
// over `new_connections_per_ip_per_second` the server sends pusher:error 4100 and closes with
// 4100, which pusher-js maps to "backoff": it waits a second, tries again, gets in, and its
// subscriptions work. Other clients are not disturbed.
//
// Runs its own server (PT_SERVER_CMD) with CLARION_NEW_CONNECTIONS_PER_IP_PER_SECOND=2 in its
// environment, so the limit does not touch the other tests' server. Another server under test
// would need its own equivalent setting.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { target, pusherClient, serverSdk, waitFor, closeAll } from '../lib/target.mjs';
import { freePort, startServer, stopServer, waitReady } from '../lib/servers.mjs';

const servers = [];

after(async () => {
  closeAll();
  await Promise.all(servers.map((s) => stopServer(s)));
});

/** A pusher-js client on `port` that records its errors (with codes) and when it connected. */
function watchedClient(port) {
  const p = pusherClient({ wsPort: port, wssPort: port });
  const w = { p, errors: [], connectedAt: null };
  p.connection.bind('error', (e) => {
    const code = e?.data?.code ?? e?.error?.data?.code;
    w.errors.push({ code, at: Date.now() });
  });
  p.connection.bind('connected', () => {
    if (w.connectedAt === null) w.connectedAt = Date.now();
  });
  return w;
}

test('over new_connections_per_ip_per_second pusher-js gets 4100, backs off about a second, then connects and receives', async () => {
  assert.ok(target.serverCmd, 'PT_SERVER_CMD is empty: this test starts its own server (run.mjs sets it for Clarion)');
  const port = await freePort();
  const server = startServer(port, { CLARION_NEW_CONNECTIONS_PER_IP_PER_SECOND: '2' });
  servers.push(server);
  await waitReady(server);

  // Three clients from one address at once: two fit in the second's budget, one does not.
  const started = Date.now();
  const clients = [watchedClient(port), watchedClient(port), watchedClient(port)];
  await waitFor(() => clients.every((c) => c.connectedAt !== null), 10000, 'all three clients to connect');

  const refused = clients.filter((c) => c.errors.some((e) => e.code === 4100));
  assert.ok(refused.length >= 1, `one client should have been refused with 4100: ${JSON.stringify(clients.map((c) => c.errors))}`);
  for (const c of refused) {
    const firstRefusal = c.errors.find((e) => e.code === 4100).at;
    const waited = c.connectedAt - firstRefusal;
    // pusher-js's backoff for 41xx is one second; the next window opens a second after the first.
    assert.ok(waited >= 800, `a refused client reconnected after ${waited} ms, before its backoff`);
  }
  const immediate = clients.filter((c) => !refused.includes(c));
  assert.ok(immediate.length >= 1, 'the clients within the budget connect at once');
  for (const c of immediate) assert.ok(c.connectedAt - started < 800, 'no backoff for clients within the budget');

  // Everyone, the refused-then-admitted client included, subscribes and receives.
  const got = clients.map(() => []);
  clients.forEach((c, i) => c.p.subscribe('limits-room').bind('hello', (d) => got[i].push(d)));
  await waitFor(
    () => clients.every((c) => c.p.channel('limits-room')?.subscribed),
    5000,
    'all three subscriptions',
  );
  await serverSdk({ port: String(port) }).trigger('limits-room', 'hello', { n: 1 });
  await waitFor(() => got.every((g) => g.length === 1), 5000, 'the event at all three clients');
  assert.deepEqual(got, [[{ n: 1 }], [{ n: 1 }], [{ n: 1 }]]);
});
