// Runs the conformance suite. By default it builds Clarion, starts it with a test config on a
// free port, and runs every test against it. With PT_EXTERNAL=1 it runs against the server
// described by PT_HOST/PT_PORT/PT_APP_* (and PT_SERVER_CMD for the reconnect test) instead;
// the missed-message recovery tests, Clarion's own extension, are then reported as skipped
// (PT_RECOVERY=1 runs them, for a Clarion whose app records the channels lib/recovery.mjs names),
// and so are the tests of Pusher's optional app features, which need apps of their own
// (PT_FEATURES=1 runs them, for a server with the apps lib/features.mjs describes).
//
// PT_WEBHOOK_SERVER_CMD   a shell command that starts one extra, standalone server (never part of
//                         a cluster) with the same app, webhook_delay_ms = 500 and a single webhook
//                         target for every event type whose URL is {webhook_url}, listening on
//                         {port}; the webhooks test substitutes both placeholders (single-quote
//                         them in the command; the URL never contains a quote). Run.mjs sets it;
//                         with PT_EXTERNAL=1 it is taken from the environment.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './lib/ports.mjs';
import { appTables } from './lib/features.mjs';
import { startRedis } from './lib/redis-backends.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');

async function waitUp(port, ms = 20000, probe = '/up') {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}${probe}`);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server on port ${port} did not come up`);
}

/** A Python virtualenv with the pinned Pusher SDK and Pysher. */
function pythonEnv() {
  const venv = path.join(here, '.venv');
  const py = path.join(venv, 'bin', 'python');
  const stamp = path.join(venv, '.requirements');
  const req = fs.readFileSync(path.join(here, 'python', 'requirements.txt'), 'utf8');
  if (!fs.existsSync(py) || !fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== req) {
    const run = (cmd, args) => {
      const r = spawnSync(cmd, args, { stdio: 'inherit' });
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`);
    };
    run('python3', ['-m', 'venv', venv]);
    run(py, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', path.join(here, 'python', 'requirements.txt')]);
    fs.writeFileSync(stamp, req);
  }
  return py;
}

const env = { ...process.env, PT_PYTHON: process.env.PT_PYTHON ?? pythonEnv() };
const cluster = process.env.PT_CLUSTER === '1';
// The Redis of a cluster run: plain (default), tls, cluster or sentinel (lib/redis-backends.mjs).
const redisKind = process.env.PT_REDIS ?? 'plain';
const servers = [];
let report = 'COMPATIBILITY.md';
if (process.env.PT_EXTERNAL !== '1') {
  // Cargo names the binary it built (wherever CARGO_TARGET_DIR or a cargo config puts it).
  const build = spawnSync('cargo', ['build', '--quiet', '--bin', 'clarion', '--message-format=json-render-diagnostics'], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (build.status !== 0) process.exit(build.status ?? 1);
  const built = build.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .find((m) => m.reason === 'compiler-artifact' && m.target?.name === 'clarion' && m.executable)?.executable;
  const bin = process.env.CLARION_BIN ?? built ?? path.join(repo, 'target', 'debug', 'clarion');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clarion-pt-'));
  const config = path.join(dir, 'clarion.toml');
  const lines = [];
  if (cluster) {
    // Two Clarion nodes sharing a real Redis of the kind PT_REDIS names (lib/redis-backends.mjs).
    const prefix = `pt-${process.pid}`;
    const redis = await startRedis(redisKind, dir, prefix);
    servers.push(...redis.children);
    lines.push('adapter = "redis"', ...redis.lines, `redis_prefix = "${prefix}"`);
    report = redisKind === 'plain' ? 'COMPATIBILITY-cluster.md' : `COMPATIBILITY-cluster-${redisKind}.md`;
  }
  lines.push('[[apps]]', 'id = "123456"', 'key = "pt-key"', 'secret = "pt-secret"', 'enable_client_messages = true');
  // Missed-message recovery (Clarion's extension, docs/recovery.md) on channels no protocol test
  // uses: private-recovery.* for tests/recovery*.test.mjs, and the example page's public channel
  // `demo` (examples/browser/, driven by tests/browser.test.mjs; its other checks see the same
  // behaviour either way: only a subscribe that opts in, as the page's plugin does, gets stamps).
  lines.push('[[apps.recovery]]', 'channels = ["private-recovery.*", "demo"]');
  // The apps of Pusher's optional features (subscription counts, watchlists, authorized
  // connections, origins), each in its own app so the one above stays plain: lib/features.mjs.
  lines.push(...appTables(), '');
  fs.writeFileSync(config, lines.join('\n'));
  // The webhook node's config, with the receiver's URL left as the literal text {webhook_url}:
  // PT_WEBHOOK_SERVER_CMD copies it to webhook-<port>.toml with the URL filled in (escaped for
  // sed) and execs Clarion on it. Every path is a positional argument of `sh -c`, so spaces and
  // quotes in them are harmless.
  const webhookTemplate = path.join(dir, 'webhook.toml.in');
  fs.writeFileSync(
    webhookTemplate,
    [
      'webhook_delay_ms = 500',
      '[[apps]]',
      'id = "123456"',
      'key = "pt-key"',
      'secret = "pt-secret"',
      'enable_client_messages = true',
      '[[apps.webhooks]]',
      'url = "{webhook_url}"',
      '',
    ].join('\n'),
  );
  const webhookScript = String.raw`esc=$(printf '%s\n' "$1" | sed -e 's/[\\|&]/\\&/g') && sed -e "s|[{]webhook_url[}]|$esc|g" "$4" > "$5/webhook-$2.toml" && exec "$3" --config "$5/webhook-$2.toml" --host 127.0.0.1 --port "$2"`;
  const shq = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;
  const ports = cluster ? [await freePort(), await freePort()] : [await freePort()];
  Object.assign(env, {
    PT_HOST: '127.0.0.1',
    PT_PORT: String(ports[0]),
    PT_PORTS: cluster ? ports.join(',') : '',
    PT_APP_ID: '123456',
    PT_APP_KEY: 'pt-key',
    PT_APP_SECRET: 'pt-secret',
    PT_SERVER_NAME: cluster
      ? `a two-node Clarion cluster (Redis adapter${redisKind === 'plain' ? '' : ` on ${redisKind} Redis`}; clients spread over both nodes)`
      : 'Clarion',
    PT_SERVER_CMD: `exec '${bin}' --config '${config}' --host 127.0.0.1 --port {port}`,
    PT_WEBHOOK_SERVER_CMD: `sh -c ${shq(webhookScript)} clarion-webhook-node '{webhook_url}' '{port}' ${[bin, webhookTemplate, dir].map(shq).join(' ')}`,
  });
  for (const port of ports) {
    servers.push(
      spawn(bin, ['--config', config, '--host', '127.0.0.1', '--port', String(port)], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
      }),
    );
  }
  for (const port of ports) await waitUp(port, 20000, cluster ? '/ready' : '/up');
}

// `node run.mjs tests/a.test.mjs …` runs only those files, and then writes no table (a partial
// table would replace the full one).
const only = process.argv.slice(2);
const files =
  only.length > 0
    ? only
    : fs
        .readdirSync(path.join(here, 'tests'))
        .filter((f) => f.endsWith('.test.mjs'))
        .map((f) => path.join('tests', f));
const table = only.length > 0 ? [] : ['--test-reporter=./lib/table-reporter.mjs', `--test-reporter-destination=${report}`];
const node = spawn(
  process.execPath,
  ['--test', '--test-concurrency=1', '--test-reporter=spec', '--test-reporter-destination=stdout', ...table, ...files],
  { cwd: here, stdio: 'inherit', env },
);
const code = await new Promise((r) => node.on('exit', (c) => r(c ?? 1)));
for (const s of servers.reverse()) s.kill('SIGTERM');
process.exit(code);
