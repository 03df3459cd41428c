// Standalone servers for the tests that need their own (shutdown, connection limits): started
// with PT_SERVER_CMD on a free port, in their own process group so they can be signalled as a
// whole. PT_SERVER_CMD should exec the server, so the process started is the server itself.
import { spawn } from 'node:child_process';
import { target, sleep } from './target.mjs';
export { freePort } from './ports.mjs';

/** Starts PT_SERVER_CMD on `port` with extra environment variables `env`. */
export function startServer(port, env = {}) {
  const cmd = target.serverCmd.replaceAll('{port}', String(port));
  const child = spawn('sh', ['-c', cmd], {
    stdio: ['ignore', 'ignore', 'inherit'],
    detached: true,
    env: { ...process.env, ...env },
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const server = { port, child, exited, done: false };
  exited.then(() => (server.done = true));
  return server;
}

/** Sends `sig` to the server's process group. */
export function signal(server, sig) {
  try {
    process.kill(-server.child.pid, sig);
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL if the server has not exited within 5 s; waits for the exit. */
export async function stopServer(server) {
  if (server.done) return;
  signal(server, 'SIGTERM');
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), 5000)));
  const result = await Promise.race([server.exited, timeout]);
  clearTimeout(timer);
  if (result === 'timeout') {
    signal(server, 'SIGKILL');
    await server.exited;
  }
}

/** Waits until the server answers GET /ready with 200 (for a cluster node: Redis reachable too). */
export async function waitReady(server, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    if (server.done) throw new Error(`server on port ${server.port} exited: ${JSON.stringify(await server.exited)}`);
    try {
      const r = await fetch(`http://${target.host}:${server.port}/ready`);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error(`server on port ${server.port} was not ready within ${ms} ms`);
    await sleep(50);
  }
}
