// End-to-end encrypted channels (private-encrypted-*: the SDK encrypts, pusher-js decrypts, the
// server only forwards) and cache channels (cache-*, private-cache-*: the last event is replayed
// to new subscribers, pusher:cache_miss when there is none).
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

/** The decoded frames pusher-js receives for `event` on `channel`, before any channel logic. */
function wireLog(pusher, channel, event) {
  const frames = [];
  pusher.connection.bind('message', (m) => {
    if (m.channel === channel && m.event === event) frames.push(m);
  });
  return frames;
}

/** Checks that `data` is a NaCl secretbox envelope for `plaintext` and does not contain it. */
function assertCiphertext(data, plaintext) {
  assert.equal(typeof data, 'object', `expected an encrypted envelope, got ${JSON.stringify(data)}`);
  assert.deepEqual(Object.keys(data).sort(), ['ciphertext', 'nonce']);
  assert.equal(Buffer.from(data.nonce, 'base64').length, 24, 'nonce is 24 bytes');
  // secretbox adds a 16-byte Poly1305 tag to the plaintext.
  assert.equal(Buffer.from(data.ciphertext, 'base64').length, Buffer.byteLength(plaintext) + 16);
  assert.ok(!JSON.stringify(data).includes('4111'), 'plaintext visible on the wire');
}

test('encrypted channel: Echo .encryptedPrivate() decrypts what the SDK encrypted; the wire carries only ciphertext', async () => {
  const room = unique('secret-room');
  const name = `private-encrypted-${room}`;
  const echo = echoClient(authOptions(auth, '1'));
  const wire = wireLog(echo.connector.pusher, name, 'card');
  const got = nextCall((cb) => echo.encryptedPrivate(room).listen('.card', cb), 5000, 'decrypted event');
  await subscribed(echo.connector.pusher.channel(name));

  const payload = { card: '4111 1111 1111 1111', holder: 'Ada' };
  await serverSdk().trigger(name, 'card', payload);
  assert.deepEqual(await got, payload);
  assert.equal(wire.length, 1);
  assertCiphertext(wire[0].data, JSON.stringify(payload));
});

test('encrypted channel: a subscriber without the right key receives the same ciphertext and cannot decrypt it', async () => {
  const room = unique('secret-vault');
  const name = `private-encrypted-${room}`;
  const sdk = serverSdk();
  const echo = echoClient(authOptions(auth, '1'));
  const echoWire = wireLog(echo.connector.pusher, name, 'card');
  const decrypted = nextCall((cb) => echo.encryptedPrivate(room).listen('.card', cb), 5000, 'decrypted event');

  // A client whose authorizer hands out a valid signature but a wrong shared_secret.
  let authorizations = 0;
  const wrongKey = Buffer.alloc(32, 1).toString('base64');
  const spy = pusherClient({
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        authorizations += 1;
        const { auth: signature } = sdk.authorizeChannel(socketId, channelName);
        callback(null, { auth: signature, shared_secret: wrongKey });
      },
    },
  });
  const spyWire = wireLog(spy, name, 'card');
  const spyGot = recorder();
  const spyChannel = spy.subscribe(name);
  spyChannel.bind('card', spyGot.cb);
  await subscribed(spyChannel);
  await subscribed(echo.connector.pusher.channel(name));
  assert.equal(authorizations, 1);

  const payload = { card: '4111 1111 1111 1111' };
  await sdk.trigger(name, 'card', payload);
  assert.deepEqual(await decrypted, payload);
  await waitFor(() => spyWire.length === 1, 5000, 'the event on the wrong-key client');
  assertCiphertext(spyWire[0].data, JSON.stringify(payload));
  assert.deepEqual(spyWire[0].data, echoWire[0].data, 'both subscribers get the same bytes');
  // pusher-js fails to decrypt, fetches the key again once, fails again and drops the event.
  await waitFor(() => authorizations === 2, 5000, 'pusher-js to refetch the key after failing to decrypt');
  await sleep(100);
  assert.equal(spyGot.calls.length, 0, 'the event was decrypted with the wrong key');
});

test('cache channel: a new subscriber gets the last event right after subscribing', async () => {
  const name = unique('cache-pt-prices');
  const sdk = serverSdk();
  await sdk.trigger(name, 'price', { eur: 1.5 });
  await sdk.trigger(name, 'price', { eur: 1.6 });

  const p = pusherClient();
  const ch = p.subscribe(name);
  const order = [];
  const prices = recorder();
  const misses = recorder();
  ch.bind('pusher:subscription_succeeded', () => order.push('subscribed'));
  ch.bind('price', (d) => {
    order.push('price');
    prices.cb(d);
  });
  ch.bind('pusher:cache_miss', misses.cb);
  await waitFor(() => prices.calls.length >= 1, 5000, 'the cached event');
  assert.deepEqual(prices.calls[0], { eur: 1.6 });
  assert.deepEqual(order, ['subscribed', 'price']);

  // Nothing else was replayed: a later live event is the next thing the client sees.
  const live = nextCall((cb) => ch.bind('marker', cb), 5000, 'a live event');
  await sdk.trigger(name, 'marker', {});
  await live;
  assert.equal(prices.calls.length, 1);
  assert.equal(misses.calls.length, 0, 'cache_miss on a channel with a cached event');
});

test('cache channel: subscribing to an empty cache channel emits pusher:cache_miss', async () => {
  const name = unique('cache-pt-empty');
  const p = pusherClient();
  const ch = p.subscribe(name);
  const order = [];
  ch.bind('pusher:subscription_succeeded', () => order.push('subscribed'));
  const miss = nextCall((cb) => ch.bind('pusher:cache_miss', cb), 5000, 'pusher:cache_miss');
  ch.bind('pusher:cache_miss', () => order.push('cache_miss'));
  const data = await miss;
  assert.equal(data, undefined, 'pusher:cache_miss carries no data');
  assert.deepEqual(order, ['subscribed', 'cache_miss']);
});

test('private-cache- channel: Echo .private() authorizes and receives the cached event', async () => {
  const channel = unique('cache-pt-quotes');
  await serverSdk().trigger(`private-${channel}`, 'quote', { q: 42 });
  const echo = echoClient(authOptions(auth, '1'));
  const misses = recorder();
  const ch = echo.private(channel).on('pusher:cache_miss', misses.cb);
  const got = await nextCall((cb) => ch.listen('.quote', cb), 5000, 'the cached event');
  assert.deepEqual(got, { q: 42 });
  assert.equal(misses.calls.length, 0);
});

test('private-cache- channel: an empty one emits pusher:cache_miss to an authorized subscriber', async () => {
  const channel = unique('cache-pt-empty-quotes');
  const echo = echoClient(authOptions(auth, '1'));
  await nextCall((cb) => echo.private(channel).on('pusher:cache_miss', cb), 5000, 'pusher:cache_miss');
  assert.equal(echo.connector.pusher.channel(`private-${channel}`).subscribed, true);
});
