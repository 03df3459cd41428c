// The Python ecosystem: the official Pusher Python SDK and the Pysher client, each driven by a
// plain-assert script in python/ that prints one line per check (run.mjs provides PT_PYTHON, a
// virtualenv with python/requirements.txt installed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const pythonDir = path.resolve(here, '..', 'python');

function runScript(script) {
  const python = process.env.PT_PYTHON;
  assert.ok(python, 'PT_PYTHON is not set: run the suite with `node run.mjs`, which creates the virtualenv');
  return new Promise((resolve) => {
    execFile(
      python,
      [path.join(pythonDir, script)],
      { env: { ...process.env, PYTHONUNBUFFERED: '1' }, timeout: 30_000, killSignal: 'SIGKILL', maxBuffer: 4 << 20 },
      (error, stdout, stderr) => resolve({ error, stdout, stderr }),
    );
  });
}

async function assertScriptPasses(script) {
  const { error, stdout, stderr } = await runScript(script);
  const output = `--- ${script} stdout ---\n${stdout}--- ${script} stderr ---\n${stderr}`;
  if (error?.killed) assert.fail(`${script} did not finish within 30 s\n${output}`);
  if (error && typeof error.code !== 'number') assert.fail(`${script} could not be run: ${error.message}\n${output}`);
  assert.equal(error?.code ?? 0, 0, `${script} failed\n${output}`);
  assert.match(stdout, /^ok /m, `${script} reported no checks\n${output}`);
  assert.doesNotMatch(stdout, /^FAIL /m, output);
}

test('Python SDK (pusher 3.3.4): trigger, batch, channel queries, auth helpers accepted', async () => {
  await assertScriptPasses('sdk_check.py');
});

test('Pysher 1.0.8 (protocol 6): public, private (SDK auth) and presence channels', async () => {
  await assertScriptPasses('pysher_check.py');
});
