// Shared by the missed-message recovery tests (tests/recovery*.test.mjs, and the example page's
// check in tests/browser.test.mjs). Recovery is Clarion's own extension of the Pusher protocol
// (docs/recovery.md), so against another server (PT_EXTERNAL=1) these tests are skipped, not
// passed; PT_RECOVERY=1 runs them anyway, for an external Clarion whose app records the channels
// below ([[apps.recovery]] channels = ["private-recovery.*", "demo"]; run.mjs writes that table).
import crypto from 'node:crypto';
import { target } from './target.mjs';

/** false, or why the recovery tests are skipped. */
export const recoverySkip =
  process.env.PT_EXTERNAL === '1' && process.env.PT_RECOVERY !== '1'
    ? "missed-message recovery is Clarion's own extension (docs/recovery.md), not part of the Pusher protocol"
    : false;

/** Whether the suite runs against a cluster (PT_PORTS), whose nodes share Redis history. */
export const cluster = target.ports.length > 1;

/** The Echo name of a recorded private channel no other test uses (Echo adds "private-"). */
export const recordedName = (what) => `recovery.${what}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;

/** The Laravel event class the tests broadcast; Echo's `.listen('BookingCreated')` receives it. */
export const BOOKING = 'App\\Events\\BookingCreated';

/** 1..n */
export const upTo = (n) => Array.from({ length: n }, (_, i) => i + 1);

/**
 * DELETE /apps/{id}/channels/{channel}/history, signed like the rest of the HTTP API (the Node
 * SDK has no DELETE): forgets a channel's history, so positions in it get epoch_changed. `app`
 * ({appId, key, secret}) is the target's app unless given.
 */
export async function purgeHistory(channel, port = target.port, app = target) {
  const path = `/apps/${app.appId}/channels/${encodeURIComponent(channel)}/history`;
  const query = `auth_key=${app.key}&auth_timestamp=${Math.floor(Date.now() / 1000)}&auth_version=1.0`;
  const signature = crypto.createHmac('sha256', app.secret).update(`DELETE\n${path}\n${query}`).digest('hex');
  const res = await fetch(`http://${target.host}:${port}${path}?${query}&auth_signature=${signature}`, { method: 'DELETE' });
  return { status: res.status, body: await res.text() };
}
