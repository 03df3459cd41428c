// Presence channels through Laravel Echo (.join/.here/.joining/.leaving) and pusher-js
// (channel.members), authorized over real HTTP by the Laravel-like auth server.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { echoClient, pusherClient, serverSdk, nextCall, subscribed, waitFor, sleep, closeAll, unique, recorder } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';

let auth;
before(async () => {
  auth = await startAuthServer();
});
after(async () => {
  closeAll();
  await auth.close();
});

/** The pusher-js channel behind an Echo presence channel. */
const pusherChannel = (echo, name) => echo.connector.pusher.channel(name);

/**
 * Makes sure everything the server had queued for `echo` on `channel` before now has been
 * delivered: triggers a marker event through the HTTP API and waits until it arrives (the server
 * delivers one connection's frames in order).
 */
async function flush(echo, channel) {
  const ch = pusherChannel(echo, channel);
  const marker = `flush-${Math.random().toString(36).slice(2)}`;
  const got = nextCall((cb) => ch.bind(marker, cb), 5000, `marker ${marker} on ${channel}`);
  await serverSdk().trigger(channel, marker, {});
  await got;
}

/** subscription_count of a channel from the HTTP API, or undefined when the server omits it. */
async function subscriptionCount(channel) {
  const res = await serverSdk().get({ path: `/channels/${channel}`, params: { info: 'subscription_count' } });
  const body = await res.json();
  return body.subscription_count;
}

test('Echo .join(): a user on two tabs fires joining exactly once, with user_info from the auth endpoint', async () => {
  const room = unique('pt-join-once');
  const name = `presence-${room}`;
  const a = echoClient(authOptions(auth, '1'));
  const joining = recorder();
  await nextCall((cb) => a.join(room).here(cb).joining(joining.cb), 5000, 'here() for user 1');

  const b1 = echoClient(authOptions(auth, '2'));
  await nextCall((cb) => b1.join(room).here(cb), 5000, 'here() for tab 1 of user 2');
  await waitFor(() => joining.calls.length >= 1, 5000, 'joining for user 2');
  assert.deepEqual(joining.calls[0], { name: 'User 2' });

  const b2 = echoClient(authOptions(auth, '2'));
  await nextCall((cb) => b2.join(room).here(cb), 5000, 'here() for tab 2 of user 2');
  await sleep(100);
  await flush(a, name);
  assert.equal(joining.calls.length, 1, `joining fired ${joining.calls.length} times: ${JSON.stringify(joining.calls)}`);
  assert.equal(pusherChannel(a, name).members.count, 2);
});

test('Echo .join(): here() on the second tab of a user lists every user exactly once', async () => {
  const room = unique('pt-here');
  const a = echoClient(authOptions(auth, '1'));
  await nextCall((cb) => a.join(room).here(cb), 5000, 'here() for user 1');
  const b1 = echoClient(authOptions(auth, '2'));
  await nextCall((cb) => b1.join(room).here(cb), 5000, 'here() for tab 1 of user 2');

  const b2 = echoClient(authOptions(auth, '2'));
  const here = await nextCall((cb) => b2.join(room).here(cb), 5000, 'here() for tab 2 of user 2');
  assert.ok(Array.isArray(here), 'here() receives an array');
  const names = here.map((u) => u.name).sort();
  assert.deepEqual(names, ['User 1', 'User 2']);
  const members = pusherChannel(b2, `presence-${room}`).members;
  assert.equal(members.count, 2);
  assert.deepEqual(members.me, { id: '2', info: { name: 'User 2' } });
});

test('Echo .join(): closing one of two tabs fires no leaving; closing the last tab fires leaving', async () => {
  const room = unique('pt-leave');
  const name = `presence-${room}`;
  const a = echoClient(authOptions(auth, '1'));
  const leaving = recorder();
  await nextCall((cb) => a.join(room).here(cb).leaving(leaving.cb), 5000, 'here() for user 1');
  const b1 = echoClient(authOptions(auth, '2'));
  await nextCall((cb) => b1.join(room).here(cb), 5000, 'here() for tab 1');
  const b2 = echoClient(authOptions(auth, '2'));
  await nextCall((cb) => b2.join(room).here(cb), 5000, 'here() for tab 2');
  await waitFor(async () => (await subscriptionCount(name)) === 3, 5000, 'subscription_count 3');

  b1.disconnect();
  // Wait until the server has processed the close, then until A has had everything queued.
  await waitFor(async () => (await subscriptionCount(name)) === 2, 5000, 'subscription_count 2 after closing tab 1');
  await sleep(100);
  await flush(a, name);
  assert.equal(leaving.calls.length, 0, `leaving fired after closing only one tab: ${JSON.stringify(leaving.calls)}`);
  assert.equal(pusherChannel(a, name).members.count, 2);

  b2.disconnect();
  await waitFor(() => leaving.calls.length >= 1, 5000, 'leaving for user 2');
  assert.deepEqual(leaving.calls[0], { name: 'User 2' });
  await sleep(100);
  await flush(a, name);
  assert.equal(leaving.calls.length, 1);
  assert.equal(pusherChannel(a, name).members.count, 1);
});

test('pusher-js presence channel: members.count, members.me and member_added', async () => {
  const name = unique('presence-pt-members');
  const p7 = pusherClient(authOptions(auth, '7'));
  const ch7 = p7.subscribe(name);
  const added = recorder();
  ch7.bind('pusher:member_added', added.cb);
  const members7 = await subscribed(ch7);
  assert.equal(members7.count, 1);
  assert.deepEqual(members7.me, { id: '7', info: { name: 'User 7' } });

  const p8 = pusherClient(authOptions(auth, '8'));
  const ch8 = p8.subscribe(name);
  const members8 = await subscribed(ch8);
  assert.equal(members8.count, 2);
  assert.deepEqual(members8.me, { id: '8', info: { name: 'User 8' } });
  assert.deepEqual(members8.get('7'), { id: '7', info: { name: 'User 7' } });
  const ids = [];
  members8.each((m) => ids.push(m.id));
  assert.deepEqual(ids.sort(), ['7', '8']);

  await waitFor(() => added.calls.length >= 1, 5000, 'member_added on the first client');
  assert.deepEqual(added.calls[0], { id: '8', info: { name: 'User 8' } });
  assert.equal(ch7.members.count, 2);
});

test("Echo with broadcaster 'reverb' joins a presence channel and gets here()", async () => {
  const room = unique('pt-reverb-room');
  const echo = echoClient({ broadcaster: 'reverb', ...authOptions(auth, '9') });
  const here = await nextCall((cb) => echo.join(room).here(cb), 5000, "here() with broadcaster 'reverb'");
  assert.deepEqual(here, [{ name: 'User 9' }]);

  const other = echoClient({ broadcaster: 'reverb', ...authOptions(auth, '10') });
  const joined = nextCall((cb) => echo.join(room).joining(cb), 5000, 'joining for user 10');
  const here2 = await nextCall((cb) => other.join(room).here(cb), 5000, 'here() for user 10');
  assert.deepEqual(here2.map((u) => u.name).sort(), ['User 10', 'User 9']);
  assert.deepEqual(await joined, { name: 'User 10' });
});
