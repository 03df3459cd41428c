// examples/browser/serve.mjs as the browser tests run it: on a free port, pointed at a server by
// the environment variables it documents (CLARION_URL, CLARION_APP_*), its output kept for
// failure messages.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const SERVE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'browser', 'serve.mjs');

/**
 * Starts serve.mjs with `env` as its whole environment (plus PORT=0); resolves with
 * {url, close, output} once it prints its URL, rejects with its output if it does not within
 * `wait` ms.
 */
export function startExampleServer(env, wait = 10_000) {
  const child = spawn(process.execPath, [SERVE], { env: { ...env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
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
      reject(new Error(`${SERVE} printed no URL within ${wait} ms; output:\n${out}`));
    }, wait);
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
