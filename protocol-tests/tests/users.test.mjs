// User authentication (pusher:signin) through pusher-js signin() and the auth server's
// /broadcasting/user-auth, server-to-user messages (sendToUser) and terminateUserConnections.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { pusherClient, serverSdk, connected, nextCall, subscribed, waitFor, sleep, closeAll, recorder } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';

let auth;
before(async () => {
  auth = await startAuthServer();
});
after(async () => {
  closeAll();
  await auth.close();
});

/**
 * A pusher-js client signed in as `id`: resolves once pusher:signin_success has arrived and the
 * #server-to-user-{id} channel that pusher-js then subscribes to has succeeded.
 */
async function signedIn(id) {
  const p = pusherClient(authOptions(auth, id));
  const signinError = recorder();
  p.user.bind('pusher:signin_error', signinError.cb);
  const serverError = recorder();
  p.connection.bind('error', serverError.cb);
  await connected(p);
  p.signin();
  await waitFor(
    () => p.user.serverToUserChannel || signinError.calls.length || serverError.calls.length,
    5000,
    `pusher:signin_success for user ${id}`,
  );
  assert.deepEqual(signinError.calls, [], 'the user-auth request failed');
  assert.deepEqual(serverError.calls, [], 'the server refused the sign-in');
  await subscribed(p.user.serverToUserChannel);
  return p;
}

/**
 * On a "refused" close code pusher-js calls close() on its already closed Node WebSocket
 * (faye-websocket), which arms a 30 s close timer that nothing clears and that would keep this
 * test process alive; it has no effect on the test, so let the process exit without it.
 */
function releaseCloseTimer(socket) {
  socket?._closeTimer?.unref?.();
}

/** Records connection state changes of a pusher-js client. */
function stateLog(p) {
  const states = [];
  p.connection.bind('state_change', ({ current }) => states.push(current));
  return states;
}

test('pusher-js signin() signs in through the user-auth endpoint and subscribes #server-to-user-{id}', async () => {
  const p = await signedIn('11');
  assert.deepEqual(p.user.user_data, { id: '11', name: 'User 11' });
  assert.equal(p.user.serverToUserChannel.name, '#server-to-user-11');
  assert.equal(p.user.serverToUserChannel.subscribed, true);
});

test('sendToUser from the Node SDK reaches pusher.user.bind() of that user only', async () => {
  const p11 = await signedIn('21');
  const p12 = await signedIn('22');
  const to11 = nextCall((cb) => p11.user.bind('invoice-paid', cb), 5000, 'invoice-paid for user 21');
  const wrong = recorder();
  p12.user.bind('invoice-paid', wrong.cb);
  const marker = nextCall((cb) => p12.user.bind('marker', cb), 5000, 'marker for user 22');

  await serverSdk().sendToUser('21', 'invoice-paid', { amount: 30 });
  assert.deepEqual(await to11, { amount: 30 });
  await serverSdk().sendToUser('22', 'marker', {});
  await marker;
  assert.equal(wrong.calls.length, 0, 'another user received the message');
});

test('terminateUserConnections closes the signed-in user, pusher-js does not reconnect, others stay connected', async () => {
  const gone = await signedIn('13');
  const stays = await signedIn('14');
  const goneStates = stateLog(gone);
  const stayStates = stateLog(stays);
  const goneErrors = recorder();
  gone.connection.bind('error', goneErrors.cb);
  const staySocket = stays.connection.socket_id;
  const goneSocket = gone.connection.connection?.transport?.socket;

  try {
    await serverSdk().terminateUserConnections('13');
    await waitFor(() => goneStates.length > 0, 5000, 'the terminated connection to change state');
    // pusher-js retries 1 s after a close it does not consider final; give it time to try.
    await sleep(1500);
  } finally {
    releaseCloseTimer(goneSocket);
  }
  assert.equal(gone.connection.state, 'disconnected', `states after termination: ${goneStates.join(' → ')}`);
  assert.ok(!goneStates.includes('connecting'), `pusher-js reconnected: ${goneStates.join(' → ')}`);
  const closeError = goneErrors.calls.find((e) => e?.error?.data?.code !== undefined);
  assert.ok(closeError, `no close code surfaced: ${JSON.stringify(goneErrors.calls)}`);
  const code = closeError.error.data.code;
  assert.ok(code >= 4000 && code < 4100, `close code ${code} is not a "do not reconnect" code (4000–4099)`);

  assert.equal(stays.connection.state, 'connected');
  assert.equal(stays.connection.socket_id, staySocket);
  assert.deepEqual(stayStates, []);
  const still = nextCall((cb) => stays.user.bind('still-here', cb), 5000, 'a message to the other user');
  await serverSdk().sendToUser('14', 'still-here', { ok: true });
  assert.deepEqual(await still, { ok: true });
});

test('terminateUserConnections leaves a presence member that never signed in connected', async () => {
  const p = pusherClient(authOptions(auth, '15'));
  const ch = p.subscribe('presence-pt-terminate-presence');
  const members = await subscribed(ch);
  assert.equal(members.me.id, '15');
  const states = stateLog(p);
  const socket = p.connection.socket_id;

  await serverSdk().terminateUserConnections('15');
  const got = nextCall((cb) => ch.bind('after', cb), 5000, 'an event after terminate');
  await sleep(200);
  await serverSdk().trigger('presence-pt-terminate-presence', 'after', { ok: true });
  assert.deepEqual(await got, { ok: true });
  assert.equal(p.connection.state, 'connected');
  assert.equal(p.connection.socket_id, socket);
  assert.deepEqual(states, []);
});
