// Missed-message recovery (docs/recovery.md) with stock Laravel Echo 2 + pusher-js 8 and the
// plugin this repository ships (clients/echo-recovery), on a recorded private channel
// (private-recovery.*, recorded by the [[apps.recovery]] table run.mjs writes).
//
// The plugin is imported from its source in this repository, not installed as a `file:`
// dependency: it has no dependencies of its own (it wraps the pusher-js instance it is given),
// so a relative import tests exactly the working tree's index.mjs with this suite's pinned
// pusher-js and Echo, and needs no symlink or lockfile entry that could go stale.
//
// 1. A cut network: the client reaches the server through a TCP proxy (lib/tcp-proxy.mjs) that
//    drops its connection (no close frame: pusher-js sees 1006 and retries 1 s later) while a
//    publisher keeps triggering events through the signed HTTP API (in a cluster, alternately
//    through both nodes). Echo's .listen() must get every event exactly once, in order, and
//    .listen('.clarion:recovery') one {recovered: true}.
// 2. A SIGTERM'd node: two extra nodes started with PT_SERVER_CMD, the client on node 1 through
//    the proxy. Node 1 is taken out of the proxy's rotation and gets SIGTERM: it closes the
//    connection with 4200, pusher-js reconnects at once, and the proxy holds that connection
//    while events are published through node 2, then lets it through to node 2. In a cluster
//    (Redis history, shared by the nodes) node 2 replays them: recovered:true. On one node
//    (memory history: the two extra nodes are standalone servers) node 2 never saw the client's
//    history, so it says recovered:false, epoch_changed, and replays nothing: never a false true.
//
// Skipped against another server (PT_EXTERNAL=1; see lib/recovery.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { target, echoClient, serverSdk, nextPort, waitFor, sleep, closeAll } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';
import { startTcpProxy } from '../lib/tcp-proxy.mjs';
import { freePort, startServer, signal, stopServer, waitReady } from '../lib/servers.mjs';
import { recoverySkip, cluster, recordedName, BOOKING, upTo } from '../lib/recovery.mjs';
import { withRecovery } from '../../clients/echo-recovery/index.mjs';

const TIMEOUT = 15_000;

let auth = null;
const proxies = [];
const servers = [];

before(async () => {
  if (!recoverySkip) auth = await startAuthServer();
});

after(async () => {
  closeAll();
  await Promise.all(servers.map((s) => stopServer(s)));
  await Promise.all(proxies.map((p) => p.close()));
  await auth?.close();
});

/**
 * An Echo client (pusher broadcaster) connected through `proxy`, with the plugin, listening on
 * the recorded private channel `name` to BookingCreated and to the recovery marker.
 */
async function bookingsClient(proxy, name) {
  const echo = echoClient({ ...authOptions(auth, '1'), wsPort: proxy.port, wssPort: proxy.port });
  const pusher = echo.connector.pusher;
  const recovery = withRecovery(pusher);
  const c = { echo, pusher, recovery, channel: `private-${name}`, seen: [], markers: [], results: [], closes: [], states: [] };
  recovery.on('recovered', (r) => c.results.push(r)).on('failed', (r) => c.results.push(r));
  pusher.connection.bind('state_change', ({ current }) => c.states.push(current));
  pusher.connection.bind('error', (e) => {
    if (e?.type === 'PusherError' && e.data?.code) c.closes.push(e.data.code);
  });
  echo
    .private(name)
    .listen('BookingCreated', (e) => c.seen.push(e.n))
    .listen('.clarion:recovery', (r) => c.markers.push(r));
  // The plugin learns the head position from the subscription_succeeded stamp.
  await waitFor(() => recovery.position(c.channel), TIMEOUT, `the head position of ${c.channel} (is it recorded?)`);
  return c;
}

test(
  'Echo + pusher-js + the plugin through a cut TCP proxy: every event published meanwhile arrives once, in order, then clarion:recovery {recovered:true}',
  { skip: recoverySkip },
  async (t) => {
    const proxy = await startTcpProxy(nextPort(), target.host);
    proxies.push(proxy);
    const c = await bookingsClient(proxy, recordedName('cut'));
    // Every publish takes the next node (round-robin over a cluster's nodes), awaited one by one:
    // publication order is 1, 2, 3, …
    const publish = (n) => serverSdk().trigger(c.channel, BOOKING, { n });

    for (const n of upTo(3)) await publish(n);
    await waitFor(() => c.seen.length === 3, TIMEOUT, 'the first three events, live');
    assert.equal(c.recovery.position(c.channel).offset, 3);

    // A publisher that keeps going through the cut, the reconnect and the replay.
    let last = 3;
    let stop = false;
    const acked = []; // {n, sent, at}: when each publish was sent and answered
    const publisher = (async () => {
      while (!stop) {
        // At most 80 events before the marker, well within max_replay (100), however long the
        // reconnect takes.
        if (c.markers.length === 0 && last >= 80) {
          await sleep(20);
          continue;
        }
        const n = last + 1;
        const sent = Date.now();
        await publish(n);
        last = n;
        acked.push({ n, sent, at: Date.now() });
        await sleep(20);
      }
    })();
    try {
      await waitFor(() => last >= 6, TIMEOUT, 'a few events published live');
      const cutAt = Date.now();
      // The network goes: no close frame; new connections are refused for 400 ms (pusher-js
      // retries 1 s after the drop, so its first attempt gets through).
      assert.equal(proxy.cut({ refuseMs: 400 }), 1, 'the proxy dropped the one connection');
      await waitFor(() => c.markers.length === 1, 2 * TIMEOUT, `the recovery marker (states: ${c.states.join(' → ')})`);
      const lastBeforeMarker = last;
      await waitFor(() => last >= lastBeforeMarker + 3, TIMEOUT, 'three more events after the marker');
      stop = true;
      await publisher;
      await waitFor(() => c.seen.length >= last, TIMEOUT, `all ${last} events (seen ${c.seen.length})`);
      await sleep(100); // nothing more may arrive
      assert.deepEqual(c.seen, upTo(last), 'every event exactly once, in publication order');
      assert.equal(c.markers.length, 1, `markers: ${JSON.stringify(c.markers)}`);
      assert.equal(c.markers[0].recovered, true, `marker: ${JSON.stringify(c.markers[0])}`);
      assert.deepEqual(c.results, [{ channel: c.channel, ...c.markers[0] }], "the plugin's own recovered event");
      assert.deepEqual(c.closes, [1006], 'pusher-js saw an abnormal close (no close frame)');
      // Events sent after the cut and answered before the proxy let a connection through again
      // cannot have been delivered live: they must be among the replayed ones.
      const reopenedAt = proxy.forwardedAt[1];
      const missed = acked.filter((a) => a.sent > cutAt && a.at < reopenedAt).length;
      assert.ok(missed >= 1, 'no event was published while the client was away: the test proved nothing');
      assert.ok(c.markers[0].replayed >= missed, `replayed ${c.markers[0].replayed}, at least ${missed} were certainly missed`);
      assert.equal(c.recovery.position(c.channel).offset, last, 'the position follows the live events');
      t.diagnostic(
        `${last} events; ${c.markers[0].replayed} replayed after the cut (${missed} certainly missed: sent after the cut, ` +
          `answered before the reconnect); reconnected ${reopenedAt - cutAt} ms after the cut, ${proxy.refused} attempt(s) refused`,
      );
    } finally {
      stop = true;
      await publisher.catch(() => {});
    }
  },
);

test(
  cluster
    ? "recovery through a SIGTERM'd node: 4200, pusher-js reconnects to node 2, which replays every event published meanwhile once, in order, recovered:true"
    : "recovery after a SIGTERM'd node with memory history: the other node says recovered:false (epoch_changed), replays nothing, then delivers live",
  { skip: recoverySkip },
  async (t) => {
    assert.ok(target.serverCmd, 'PT_SERVER_CMD is empty: this test starts two nodes of its own with it (run.mjs sets it for Clarion)');
    const [port1, port2] = [await freePort(), await freePort()];
    const node1 = startServer(port1);
    const node2 = startServer(port2);
    servers.push(node1, node2);
    await Promise.all([waitReady(node1), waitReady(node2)]);
    const proxy = await startTcpProxy(port1, target.host);
    proxies.push(proxy);
    const c = await bookingsClient(proxy, recordedName('sigterm'));
    const via1 = serverSdk({ port: port1 });
    const via2 = serverSdk({ port: port2 });

    // Live on node 1 (in a cluster, published through node 2 and delivered over the bus).
    for (const n of upTo(3)) await (cluster ? via2 : via1).trigger(c.channel, BOOKING, { n });
    await waitFor(() => c.seen.length === 3, TIMEOUT, 'the first three events, live on node 1');
    const firstSocket = c.pusher.connection.socket_id;

    // Node 1 out of rotation: the client's next connection waits at the proxy, for node 2.
    proxy.hold();
    proxy.backend = port2;
    signal(node1, 'SIGTERM');
    await waitFor(() => c.closes.includes(4200) && c.pusher.connection.state !== 'connected', TIMEOUT, 'the 4200 close from node 1');
    // Meanwhile, five bookings through node 2.
    for (const n of [4, 5, 6, 7, 8]) await via2.trigger(c.channel, BOOKING, { n });
    proxy.release();

    await waitFor(() => c.markers.length === 1, TIMEOUT, `the recovery marker from node 2 (states: ${c.states.join(' → ')})`);
    assert.notEqual(c.pusher.connection.socket_id, firstSocket);
    assert.deepEqual(proxy.routed, [port1, port2], 'connections through the proxy, by node');
    assert.deepEqual(c.closes, [4200], 'pusher-js saw the graceful-shutdown close code');
    const exit = await node1.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, "node 1's exit after SIGTERM");

    await via2.trigger(c.channel, BOOKING, { n: 9 });
    if (cluster) {
      await waitFor(() => c.seen.length === 9, TIMEOUT, 'the next event, live on node 2');
      await sleep(100);
      assert.deepEqual(c.seen, upTo(9), 'every event exactly once, in publication order');
      assert.deepEqual(c.markers, [{ recovered: true, replayed: 5 }]);
    } else {
      await waitFor(() => c.seen.length === 4, TIMEOUT, 'the next event, live on node 2');
      await sleep(100);
      assert.deepEqual(c.seen, [1, 2, 3, 9], 'nothing replayed from another history');
      assert.deepEqual(c.markers, [{ recovered: false, reason: 'epoch_changed' }]);
    }
    assert.deepEqual(c.results, [{ channel: c.channel, ...c.markers[0] }], "the plugin's own event");
    assert.equal(c.recovery.position(c.channel).offset, cluster ? 9 : 6, 'the position on node 2');
    t.diagnostic(`socket ${firstSocket} → ${c.pusher.connection.socket_id}; marker ${JSON.stringify(c.markers[0])}`);
  },
);
