// A small TCP proxy for tests that need to take a client's network away: it forwards every
// client connection to the backend port current when the connection arrives, and `cut()` drops
// every connection at once, without a WebSocket close frame, as a lost network or a killed
// load balancer would (the client sees an abnormal close, 1006).
//
//   const proxy = await startTcpProxy(serverPort);
//   pusherClient({ wsPort: proxy.port, wssPort: proxy.port });
//   proxy.cut({ refuseMs: 500 });   // drop everything; refuse new connections for 500 ms
//   proxy.cut({ hold: true });      // drop everything; new connections wait until release()
//   proxy.release();
//   proxy.backend = otherPort;      // later connections go elsewhere
//
// Refused connections are accepted and destroyed at once (the client's attempt fails). Held ones
// are accepted and not forwarded: what the client sends waits in the socket's buffer, and is
// forwarded, in order, once release() connects them to the backend current at that moment.
//
// pusher-js note: after an abnormal close it retries 1 s later; if that attempt fails it waits
// for its 15 s attempt timeout before the next one. So a refusal longer than about a second
// costs a test 15 s; hold() is the deterministic way to keep a client away for longer.
import net from 'node:net';

/**
 * Starts a proxy on a free port of `host` in front of `backend` (a port on `host`).
 * @returns {Promise<{port: number, backend: number, routed: number[], forwardedAt: number[],
 *   refused: number, open: () => number, cut: (opts?: {refuseMs?: number, hold?: boolean}) => number,
 *   hold: () => void, release: () => void, close: () => Promise<void>}>}
 */
export async function startTcpProxy(backend, host = '127.0.0.1') {
  const sockets = new Set(); // every live socket, client and upstream
  const held = []; // client sockets waiting for release()
  let refuseUntil = 0;
  let holding = false;

  const track = (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    s.setNoDelay(true);
  };

  const forward = (client) => {
    if (client.destroyed) return;
    const upstream = net.connect(proxy.backend, host);
    proxy.routed.push(proxy.backend);
    proxy.forwardedAt.push(Date.now());
    track(upstream);
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.once('close', kill);
    upstream.once('close', kill);
    // pipe() ends the other side after what is buffered has been written, so a close frame
    // followed by FIN from the server reaches the client intact (a graceful shutdown's 4200).
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const server = net.createServer((client) => {
    track(client);
    if (Date.now() < refuseUntil) {
      proxy.refused += 1;
      client.destroy();
      return;
    }
    if (holding) {
      held.push(client);
      return;
    }
    forward(client);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });

  const proxy = {
    port: server.address().port,
    /** The backend port for connections forwarded from now on. */
    backend,
    /** The backend of every forwarded connection, in order. */
    routed: [],
    /** When each forwarded connection was connected to its backend (Date.now()). */
    forwardedAt: [],
    /** How many connections were refused. */
    refused: 0,
    /** Client connections open now (forwarded or held). */
    open: () => [...sockets].filter((s) => s.server === server).length,
    /**
     * Destroys every current connection (client and upstream sides). With `refuseMs`, new
     * connections are refused for that long; with `hold`, they wait until release().
     * Returns the number of client connections dropped.
     */
    cut({ refuseMs = 0, hold = false } = {}) {
      let dropped = 0;
      for (const s of sockets) {
        if (s.server === server) dropped += 1;
        s.destroy();
      }
      held.length = 0;
      refuseUntil = refuseMs > 0 ? Date.now() + refuseMs : 0;
      holding = hold;
      return dropped;
    },
    /** New connections wait until release() (without dropping the current ones). */
    hold() {
      holding = true;
    },
    /** Forwards the held connections (to the current backend) and stops holding. */
    release() {
      holding = false;
      for (const client of held.splice(0)) forward(client);
    },
    close() {
      for (const s of sockets) s.destroy();
      held.length = 0;
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
