// Graceful shutdown (docs/operations.md, "Graceful shutdown"): on SIGTERM the server closes every connection
// with 4200, which pusher-js treats as "reconnect immediately"; behind a load balancer the client
// lands on another node, re-subscribes and keeps receiving, and the drained node exits 0.
//
// Starts two standalone servers A and B with PT_SERVER_CMD (same app) and puts a small TCP proxy
// in front of them, standing in for the load balancer: every new client connection goes to the
// current backend, A at first, B once A is taken out of rotation just before its SIGTERM.
//
// pusher-js reports the WebSocket close itself: for a close code >= 4000 its Connection emits
// 'error' with {type: 'PusherError', data: {code, message}} built from the CloseEvent
// (Protocol.getCloseError), and pusher.connection re-emits it. That is how the 4200 is observed on
// the client; 4200-4299 map to the 'retry' action (retryIn(0)) instead of the 1 s backoff.
//
// A second, raw WebSocket connected straight to A sees the close frame on the wire and holds back
// its close reply for a moment: a server waits for that reply before it lets the connection go
// (Clarion up to 2 s), so A is certainly still draining, and still listening, while this test asks
// it for a fresh upgrade (503) and for /ready (503).
//
// PT_SERVER_CMD should exec the server (as run.mjs's does), so that the process it starts is the
// server itself and its exit status is the server's.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { target, pusherClient, serverSdk, waitFor, sleep, closeAll } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';
import { freePort, startServer as startStandalone, signal, stopServer, waitReady } from '../lib/servers.mjs';

const TIMEOUT = 15000;

let auth = null;
let proxy = null;
const servers = [];
const rawSockets = new Set();

before(async () => {
  auth = await startAuthServer();
});

after(async () => {
  closeAll();
  for (const s of rawSockets) s.destroy();
  await Promise.all(servers.map((s) => stopServer(s)));
  if (proxy) await proxy.close();
  if (auth) await auth.close();
});

/** Rejects with `what` if `promise` has not settled within `ms`. */
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Starts a server on `port`, remembered for the final cleanup. */
function startServer(port) {
  const server = startStandalone(port);
  servers.push(server);
  return server;
}

/**
 * A TCP proxy on `port` that forwards each new client connection to the backend port current at
 * that moment (proxy.backend); `routed` lists the backend of every connection, in order.
 */
async function startProxy(port, backend) {
  const sockets = new Set();
  const p = { port, backend, routed: [] };
  const server = net.createServer((client) => {
    const upstream = net.connect(p.backend, target.host);
    p.routed.push(p.backend);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.setNoDelay(true);
    }
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', kill);
    upstream.on('error', kill);
    // End propagates both ways through pipe, after what is buffered has been written: a close
    // frame followed by FIN from the server reaches the client intact.
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, target.host, resolve);
  });
  p.close = () =>
    new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return p;
}

/** The upgrade request pusher-js sends, minus the key. */
function upgradePath() {
  return `/app/${target.key}?protocol=7&client=js&version=8.6.0&flash=false`;
}

/**
 * A minimal WebSocket client over node:net that reads server frames but never answers a close
 * frame until told to (reply()). Resolves once pusher:connection_established has arrived.
 */
function rawWebSocket(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, target.host);
    rawSockets.add(socket);
    const ws = { socket, messages: [], close: null };
    let onClose = null;
    ws.closed = new Promise((r) => (onClose = r));
    ws.reply = () => {
      // A masked close frame echoing the code, then FIN.
      const mask = crypto.randomBytes(4);
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(ws.close?.code ?? 1000);
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
      socket.end(Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, payload]));
    };
    let buf = Buffer.alloc(0);
    let handshaken = false;
    const fail = (e) => {
      socket.destroy();
      reject(e);
    };
    socket.on('error', fail);
    socket.on('connect', () => {
      socket.write(
        [
          `GET ${upgradePath()} HTTP/1.1`,
          `Host: ${target.host}:${port}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}`,
          'Sec-WebSocket-Version: 13',
          '',
          '',
        ].join('\r\n'),
      );
    });
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (!handshaken) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(head)) return fail(new Error(`upgrade to port ${port} refused: ${head.split('\r\n')[0]}`));
        handshaken = true;
        buf = buf.subarray(end + 4);
      }
      for (;;) {
        if (buf.length < 2) return;
        const opcode = buf[0] & 0x0f;
        let len = buf[1] & 0x7f;
        let offset = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          offset = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          offset = 10;
        }
        if (buf[1] & 0x80) offset += 4; // servers never mask, but skip a mask key if one is there
        if (buf.length < offset + len) return;
        const payload = buf.subarray(offset, offset + len);
        buf = buf.subarray(offset + len);
        if (opcode === 0x1) {
          const msg = JSON.parse(payload.toString('utf8'));
          ws.messages.push(msg);
          if (msg.event === 'pusher:connection_established') resolve(ws);
        } else if (opcode === 0x8) {
          ws.close = {
            code: payload.length >= 2 ? payload.readUInt16BE(0) : null,
            reason: payload.subarray(2).toString('utf8'),
          };
          onClose(ws.close);
        }
      }
    });
    socket.on('close', () => {
      if (!handshaken) reject(new Error(`connection to port ${port} closed before the upgrade`));
      onClose(ws.close);
    });
  });
}

/** The HTTP status a WebSocket upgrade request to `port` is answered with (101 if accepted). */
function upgradeStatus(port) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: target.host,
      port,
      path: upgradePath(),
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
        'Sec-WebSocket-Version': '13',
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Counts subscription_succeeded on a pusher-js channel and records its events named `event`. */
function watch(channel, event) {
  const w = { subscriptions: 0, events: [] };
  channel.bind('pusher:subscription_succeeded', () => (w.subscriptions += 1));
  channel.bind(event, (d) => w.events.push(d));
  return w;
}

test('SIGTERM: clients are closed with 4200, pusher-js reconnects at once to another node and receives; the node exits 0', async (t) => {
  assert.ok(
    target.serverCmd,
    'PT_SERVER_CMD is empty: this test needs a shell command that starts the server under test on the port {port} (run.mjs sets it for Clarion)',
  );
  const [portA, portB, portProxy] = [await freePort(), await freePort(), await freePort()];
  const a = startServer(portA);
  const b = startServer(portB);
  await Promise.all([waitReady(a), waitReady(b)]);
  proxy = await startProxy(portProxy, portA);

  const p = pusherClient({ ...authOptions(auth, '1'), wsPort: portProxy, wssPort: portProxy });
  const states = [];
  const closes = []; // close codes pusher-js reported, with when
  p.connection.bind('state_change', ({ current }) => states.push({ state: current, at: Date.now() }));
  p.connection.bind('error', (e) => {
    if (e?.type === 'PusherError' && e.data?.code) closes.push({ code: e.data.code, message: e.data.message, at: Date.now() });
  });
  const pub = watch(p.subscribe('pt-shutdown-public'), 'tick');
  const priv = watch(p.subscribe('private-pt-shutdown'), 'tick');
  await waitFor(() => pub.subscriptions === 1 && priv.subscriptions === 1, TIMEOUT, 'both subscriptions on A');
  const firstSocket = p.connection.socket_id;
  assert.match(firstSocket, /^\d+\.\d+$/);
  assert.deepEqual(proxy.routed, [portA]);
  await serverSdk({ port: portA }).trigger(['pt-shutdown-public', 'private-pt-shutdown'], 'tick', { n: 1 });
  await waitFor(() => pub.events.length === 1 && priv.events.length === 1, TIMEOUT, 'the first events, through A');

  // A second client straight to A, which will not answer A's close frame for now.
  const raw = await within(rawWebSocket(portA), TIMEOUT, 'a raw WebSocket connection to A');

  // Take A out of rotation, then stop it.
  proxy.backend = portB;
  const statesBefore = states.length;
  signal(a, 'SIGTERM');

  // On the wire: a close frame with 4200.
  const rawClose = await within(raw.closed, TIMEOUT, 'the close frame from A');
  assert.ok(rawClose, 'A dropped the raw connection without a close frame');
  assert.equal(rawClose.code, 4200, `close frame from A: ${JSON.stringify(rawClose)}`);
  // A waits for that connection's close reply, so it is draining and still listening: a fresh
  // upgrade is refused with 503, and /ready says 503.
  const [upgrade, ready] = await Promise.all([
    upgradeStatus(portA),
    fetch(`http://${target.host}:${portA}/ready`).then((r) => r.status),
  ]);
  raw.reply();
  assert.equal(upgrade.status, 503, `a new WebSocket upgrade to A while it drains: ${upgrade.status} ${upgrade.body}`);
  assert.equal(ready, 503, '/ready on A while it drains');

  // A exits 0 once its connections are gone.
  const exit = await within(a.exited, TIMEOUT, 'A to exit after SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, `A's exit after SIGTERM: ${JSON.stringify(exit)}`);

  // pusher-js saw the close code 4200 and reconnected by itself, through the proxy, to B.
  await waitFor(
    () => p.connection.state === 'connected' && p.connection.socket_id !== firstSocket,
    TIMEOUT,
    `pusher-js to reconnect (states: ${states.map((s) => s.state).join(' → ')})`,
  );
  assert.match(p.connection.socket_id, /^\d+\.\d+$/);
  assert.ok(closes.length >= 1, 'pusher-js reported no close code');
  assert.deepEqual(
    closes.map((c) => c.code),
    closes.map(() => 4200),
    `close codes pusher-js reported: ${JSON.stringify(closes)}`,
  );
  assert.deepEqual(
    states.slice(statesBefore).map((s) => s.state),
    ['connecting', 'connected'],
    `pusher-js states after the close: ${states.map((s) => s.state).join(' → ')}`,
  );
  assert.deepEqual(proxy.routed, [portA, portB], 'connections through the proxy, by backend');
  const reconnectedAt = states[states.length - 1].at;
  t.diagnostic(
    `pusher-js: close ${closes[0].code} "${closes[0].message}", connected again ${reconnectedAt - closes[0].at} ms later ` +
      `(socket ${firstSocket} → ${p.connection.socket_id}); raw close frame: ${rawClose.code} "${rawClose.reason}"`,
  );

  // Both channels subscribed again (the private one re-authorized for the new socket id), and
  // the next event, triggered on B, arrives.
  await waitFor(() => pub.subscriptions === 2 && priv.subscriptions === 2, TIMEOUT, 'both channels to be subscribed again, on B');
  await serverSdk({ port: portB }).trigger(['pt-shutdown-public', 'private-pt-shutdown'], 'tick', { n: 2 });
  await waitFor(() => pub.events.length === 2 && priv.events.length === 2, TIMEOUT, 'the events triggered on B');
  assert.deepEqual(pub.events, [{ n: 1 }, { n: 2 }]);
  assert.deepEqual(priv.events, [{ n: 1 }, { n: 2 }]);
  assert.ok(!states.some((s) => s.state === 'failed' || s.state === 'unavailable'), `states: ${states.map((s) => s.state).join(' → ')}`);
});
