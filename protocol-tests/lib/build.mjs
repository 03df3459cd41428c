// Clarion's own binaries for the tests that start their own server (Clarion-only tests).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Builds a binary and answers its path, wherever cargo puts it (CARGO_TARGET_DIR included). */
export function built(bin) {
  const r = spawnSync('cargo', ['build', '--quiet', '--bin', bin, '--message-format=json-render-diagnostics'], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  assert.equal(r.status, 0, `cargo build --bin ${bin}`);
  const exe = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .find((m) => m.reason === 'compiler-artifact' && m.target?.name === bin && m.executable)?.executable;
  assert.ok(exe, `cargo named the ${bin} binary`);
  return exe;
}
