// Laravel-style events through Echo: namespaced event names, notifications, toOthers (socket_id
// exclusion) and whispers (client events), with the rules of docs/protocol.md §2.3.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { echoClient, pusherClient, serverSdk, nextCall, subscribed, waitFor, sleep, closeAll, unique } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';

let auth;
before(async () => {
  auth = await startAuthServer();
});
after(async () => {
  closeAll();
  await auth.close();
});

/** Records every call of a callback: `calls` holds the argument lists. */
function recorder() {
  const calls = [];
  return { calls, cb: (...args) => calls.push(args) };
}

/** Subscription of an Echo channel (by its full Pusher name) has succeeded. */
const echoSubscribed = (echo, name) => subscribed(echo.connector.pusher.channel(name));

test("Echo .listen('ReservationCreated') receives App\\Events\\ReservationCreated on private-provider.1", async () => {
  const echo = echoClient(authOptions(auth, '1'));
  const got = nextCall((cb) => echo.private('provider.1').listen('ReservationCreated', cb), 5000, 'ReservationCreated');
  await echoSubscribed(echo, 'private-provider.1');
  await serverSdk().trigger('private-provider.1', 'App\\Events\\ReservationCreated', { reservation: { id: 42 } });
  assert.deepEqual(await got, { reservation: { id: 42 } });
});

test("Echo .listen('.custom-name') binds the event name verbatim", async () => {
  const echo = echoClient(authOptions(auth, '1'));
  const channel = unique('pt-verbatim');
  const namespaced = recorder();
  const ch = echo.private(channel).listen('custom-name', namespaced.cb);
  const got = nextCall((cb) => ch.listen('.custom-name', cb), 5000, 'custom-name');
  await echoSubscribed(echo, `private-${channel}`);
  await serverSdk().trigger(`private-${channel}`, 'custom-name', { v: 1 });
  assert.deepEqual(await got, { v: 1 });
  // Without the leading dot Echo listens for App\Events\custom-name, which was not sent.
  assert.equal(namespaced.calls.length, 0);
});

test('Echo .notification() receives Illuminate\\Notifications\\Events\\BroadcastNotificationCreated', async () => {
  const echo = echoClient(authOptions(auth, '1'));
  const got = nextCall((cb) => echo.private('App.Models.User.1').notification(cb), 5000, 'notification');
  await echoSubscribed(echo, 'private-App.Models.User.1');
  const payload = { id: '9f1c', type: 'App\\Notifications\\InvoicePaid', amount: 30 };
  await serverSdk().trigger(
    'private-App.Models.User.1',
    'Illuminate\\Notifications\\Events\\BroadcastNotificationCreated',
    payload,
  );
  assert.deepEqual(await got, payload);
});

test('toOthers: a trigger with socket_id skips that connection and reaches the others', async () => {
  const channel = unique('pt-to-others');
  const sender = echoClient(authOptions(auth, '1'));
  const other = echoClient(authOptions(auth, '2'));
  const senderGot = recorder();
  const senderNext = nextCall((cb) => sender.private(channel).listen('.after', cb), 5000, 'follow-up event on the sender');
  sender.private(channel).listen('.updated', senderGot.cb);
  const otherGot = nextCall((cb) => other.private(channel).listen('.updated', cb), 5000, 'updated on the other client');
  await echoSubscribed(sender, `private-${channel}`);
  await echoSubscribed(other, `private-${channel}`);

  const socketId = sender.socketId();
  assert.match(socketId, /^\d+\.\d+$/);
  await serverSdk().trigger(`private-${channel}`, 'updated', { n: 1 }, { socket_id: socketId });
  assert.deepEqual(await otherGot, { n: 1 });
  // The server delivers one connection's frames in order: once the sender has this later
  // event, it would already have the excluded one.
  await serverSdk().trigger(`private-${channel}`, 'after', { n: 2 });
  assert.deepEqual(await senderNext, { n: 2 });
  assert.equal(senderGot.calls.length, 0, 'the excluded connection received the event');
});

/** Whisper from `a` to `b` on the Echo channel made by `open(echo)`; checks the sender gets nothing. */
async function whisperRoundTrip(open, fullName, a, b) {
  const aTyping = recorder();
  const bTyping = recorder();
  const chA = open(a).listenForWhisper('typing', aTyping.cb);
  const chB = open(b).listenForWhisper('typing', bTyping.cb);
  const aDone = nextCall((cb) => chA.listenForWhisper('done', cb), 5000, 'the reply whisper');
  await echoSubscribed(a, fullName);
  await echoSubscribed(b, fullName);

  chA.whisper('typing', { name: 'Ada', typing: true });
  await waitFor(() => bTyping.calls.length >= 1, 5000, 'the whisper on the other client');
  assert.deepEqual(bTyping.calls[0][0], { name: 'Ada', typing: true });
  // B answers; A gets the answer after anything the server had sent it for its own whisper.
  chB.whisper('done', { ok: true });
  assert.deepEqual(await aDone, { ok: true });
  assert.equal(aTyping.calls.length, 0, 'the sender received its own whisper');
  assert.equal(bTyping.calls.length, 1);
  return bTyping.calls[0];
}

test('whisper on a private channel reaches listenForWhisper on another client, not the sender', async () => {
  const channel = unique('pt-whisper');
  const a = echoClient(authOptions(auth, '1'));
  const b = echoClient(authOptions(auth, '2'));
  await whisperRoundTrip((e) => e.private(channel), `private-${channel}`, a, b);
});

test('whisper on a presence channel reaches listenForWhisper on another client with the sender user_id', async () => {
  const room = unique('pt-whisper-room');
  const a = echoClient(authOptions(auth, '31'));
  const b = echoClient(authOptions(auth, '32'));
  const [, metadata] = await whisperRoundTrip((e) => e.join(room), `presence-${room}`, a, b);
  assert.equal(metadata?.user_id, '31', 'presence client events carry the sender user_id');
});

test('a whisper on a public channel is rejected with pusher:error 4301 and delivered to no one', async () => {
  const channel = unique('pt-public-whisper');
  const a = pusherClient();
  const b = pusherClient();
  const chA = a.subscribe(channel);
  const chB = b.subscribe(channel);
  await subscribed(chA);
  await subscribed(chB);
  const bTyping = recorder();
  chB.bind('client-typing', bTyping.cb);
  const connErrors = recorder();
  const globalErrors = recorder();
  const channelErrors = recorder();
  a.connection.bind('error', connErrors.cb);
  a.bind('pusher:error', globalErrors.cb);
  chA.bind('pusher:error', channelErrors.cb);
  const socketId = a.connection.socket_id;

  // What Echo's whisper() does; Echo only offers whisper() on private and presence channels.
  chA.trigger('client-typing', { name: 'Ada' });

  await waitFor(() => connErrors.calls.length, 5000, "a pusher:error (pusher-js connection 'error') for the rejected client event");
  const [err] = connErrors.calls[0];
  assert.equal(err.type, 'PusherError');
  assert.equal(err.data.code, 4301);
  assert.equal(typeof err.data.message, 'string');
  // pusher-js also emits the same message globally and, since it names the channel, on it.
  assert.equal(globalErrors.calls[0]?.[0]?.code, 4301, 'pusher.bind("pusher:error")');
  assert.equal(channelErrors.calls[0]?.[0]?.code, 4301, 'the error names the channel');

  const bMarker = nextCall((cb) => chB.bind('marker', cb), 5000, 'marker on the other client');
  await serverSdk().trigger(channel, 'marker', {});
  await bMarker;
  assert.equal(bTyping.calls.length, 0, 'the rejected client event was delivered');
  // Non-fatal: the sender's connection is still the same one.
  await sleep(50);
  assert.equal(a.connection.state, 'connected');
  assert.equal(a.connection.socket_id, socketId);
});
