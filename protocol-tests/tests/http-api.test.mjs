// Every HTTP API endpoint through the official Node server SDK (pusher-http-node), with pusher-js
// subscribers making the channels occupied. docs/protocol.md §5 and §0 (HTTP API rows).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { pusherClient, serverSdk, connected, nextCall, subscribed, waitFor, sleep, closeAll, target } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';

// Fixture occupancy, set up once: a public channel with 2 connections, a presence channel with
// 3 connections of 2 distinct users (user 1 twice, user 2 once).
const PUBLIC = 'pt-api-occupied';
const PRESENCE = 'presence-pt-api-room';
const EMPTY = 'pt-api-nobody';
const LEFT = 'presence-pt-api-left'; // subscribed, then unsubscribed: must not be listed

let auth;
before(async () => {
  auth = await startAuthServer();
  for (let i = 0; i < 2; i++) await subscribed(pusherClient().subscribe(PUBLIC));
  for (const user of ['1', '1', '2']) await subscribed(pusherClient(authOptions(auth, user)).subscribe(PRESENCE));
  const leaver = pusherClient(authOptions(auth, '3'));
  await subscribed(leaver.subscribe(LEFT));
  leaver.unsubscribe(LEFT);
  // The unsubscribe is fire-and-forget: wait until the server no longer reports the channel.
  await waitFor(async () => !(await getJson({ path: `/channels/${LEFT}` })).occupied, 5000, `${LEFT} to be vacated`);
});
after(async () => {
  closeAll();
  await auth?.close();
});

/** Awaits an SDK call, asserts status exactly 200 (what pusher-http-php requires) and parses JSON. */
async function ok(call) {
  const res = await call;
  assert.equal(res.status, 200);
  const text = await res.text();
  return JSON.parse(text);
}

const getJson = (opts) => ok(serverSdk().get(opts));

/** Awaits an SDK call that must fail; returns {status, body} with the body parsed as JSON. */
async function refused(call) {
  let err;
  try {
    const res = await call;
    assert.fail(`expected a refusal, got status ${res.status}: ${await res.text()}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  assert.equal(err.name, 'PusherRequestError', `not an HTTP refusal: ${err}`);
  let body;
  try {
    body = JSON.parse(err.body);
  } catch {
    assert.fail(`error body is not JSON: ${JSON.stringify(err.body)}`);
  }
  return { status: err.status, body };
}

/** A connected pusher-js client subscribed to `channels`. */
async function subscriber(...channels) {
  const p = pusherClient();
  await connected(p);
  const chans = channels.map((c) => p.subscribe(c));
  await Promise.all(chans.map(subscribed));
  return { p, chans };
}

test('trigger to one channel: 200 {} and the subscriber receives the data', async () => {
  const { chans: [ch] } = await subscriber('pt-api-one');
  const got = nextCall((cb) => ch.bind('one-event', cb));
  const body = await ok(serverSdk().trigger('pt-api-one', 'one-event', { n: 1, s: 'é€' }));
  assert.deepEqual(body, {});
  assert.deepEqual(await got, { n: 1, s: 'é€' });
});

test('trigger to several channels: 200 {} and each channel receives the event exactly once', async () => {
  const names = ['pt-api-multi-a', 'pt-api-multi-b', 'pt-api-multi-c'];
  const { chans } = await subscriber(...names);
  const seen = Object.fromEntries(names.map((n) => [n, []]));
  for (const ch of chans) ch.bind('multi', (d) => seen[ch.name].push(d));
  const body = await ok(serverSdk().trigger(names, 'multi', { all: true }));
  assert.deepEqual(body, {});
  await waitFor(() => names.every((n) => seen[n].length >= 1), 5000, 'the event on every channel');
  await sleep(200); // a duplicate would arrive within this window
  for (const n of names) assert.deepEqual(seen[n], [{ all: true }], `channel ${n}`);
});

test('trigger with info: per-channel attributes (subscription_count everywhere, user_count on presence only)', async () => {
  const body = await ok(
    serverSdk().trigger([PUBLIC, PRESENCE, EMPTY], 'with-info', { x: 1 }, { info: 'subscription_count,user_count' }),
  );
  assert.deepEqual(body, {
    channels: {
      [PUBLIC]: { subscription_count: 2 },
      [PRESENCE]: { subscription_count: 3, user_count: 2 },
      [EMPTY]: { subscription_count: 0 },
    },
  });
});

test('triggerBatch without info: 200 {} and every event reaches its own channel', async () => {
  const { chans: [a, b] } = await subscriber('pt-api-batch-a', 'pt-api-batch-b');
  const gotA = nextCall((cb) => a.bind('batch-a', cb), 5000, 'batch-a');
  const gotB = nextCall((cb) => b.bind('batch-b', cb), 5000, 'batch-b');
  const strayB = [];
  b.bind('batch-a', (d) => strayB.push(d));
  const body = await ok(
    serverSdk().triggerBatch([
      { channel: 'pt-api-batch-a', name: 'batch-a', data: { i: 0 } },
      { channel: 'pt-api-batch-b', name: 'batch-b', data: 'a plain string' },
    ]),
  );
  assert.deepEqual(body, {});
  assert.deepEqual(await gotA, { i: 0 });
  assert.equal(await gotB, 'a plain string');
  assert.deepEqual(strayB, [], 'batch-a must not reach pt-api-batch-b');
});

test('triggerBatch with info: {"batch":[…]} index-aligned, {} for items without info', async () => {
  const body = await ok(
    serverSdk().triggerBatch([
      { channel: PUBLIC, name: 'b-info', data: {}, info: 'subscription_count' },
      { channel: PRESENCE, name: 'b-info', data: {}, info: 'user_count,subscription_count' },
      { channel: PUBLIC, name: 'b-info', data: {} },
      { channel: PUBLIC, name: 'b-info', data: {}, info: 'user_count' },
    ]),
  );
  assert.deepEqual(body, {
    batch: [{ subscription_count: 2 }, { user_count: 2, subscription_count: 3 }, {}, {}],
  });
});

test('GET /channels: occupied channels only, each with {} attributes when info is absent', async () => {
  const body = await getJson({ path: '/channels' });
  assert.equal(typeof body.channels, 'object');
  assert.ok(!Array.isArray(body.channels), 'channels must be a JSON object');
  assert.deepEqual(body.channels[PUBLIC], {});
  assert.deepEqual(body.channels[PRESENCE], {});
  assert.ok(!(EMPTY in body.channels), `${EMPTY} is unoccupied but listed`);
  assert.ok(!(LEFT in body.channels), `${LEFT} was vacated but is listed`);
});

test('GET /channels filter_by_prefix=presence- info=user_count: presence channels with user_count', async () => {
  const body = await getJson({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } });
  for (const name of Object.keys(body.channels)) assert.ok(name.startsWith('presence-'), `${name} does not match the prefix`);
  assert.deepEqual(body.channels[PRESENCE], { user_count: 2 });
  assert.ok(!(LEFT in body.channels), `${LEFT} was vacated but is listed`);
  assert.ok(!(PUBLIC in body.channels));
});

test('GET /channels/{public} info=subscription_count,user_count: 200, user_count omitted', async () => {
  const body = await getJson({ path: `/channels/${PUBLIC}`, params: { info: 'subscription_count,user_count' } });
  assert.deepEqual(body, { occupied: true, subscription_count: 2 });
});

test('GET /channels/{presence} info=subscription_count,user_count: connections and distinct users', async () => {
  const body = await getJson({ path: `/channels/${PRESENCE}`, params: { info: 'subscription_count,user_count' } });
  assert.deepEqual(body, { occupied: true, subscription_count: 3, user_count: 2 });
});

test('GET /channels/{unoccupied}: {"occupied":false}', async () => {
  assert.deepEqual(await getJson({ path: `/channels/${EMPTY}` }), { occupied: false });
});

test('GET /channels/{presence}/users: distinct user ids as strings', async () => {
  const body = await getJson({ path: `/channels/${PRESENCE}/users` });
  assert.ok(Array.isArray(body.users));
  const users = [...body.users].sort((a, b) => String(a.id).localeCompare(String(b.id)));
  assert.deepEqual(users, [{ id: '1' }, { id: '2' }]);
});

test('terminateUserConnections: 200 {}, closes the signed-in connection, spares others', async () => {
  const signedIn = pusherClient(authOptions(auth, '77'));
  await connected(signedIn);
  signedIn.signin();
  await nextCall((cb) => signedIn.user.signinDonePromise.then(cb), 5000, 'pusher:signin_success');
  // A presence member with the same user id that never signed in must stay (docs/protocol.md §5.1).
  const member = pusherClient(authOptions(auth, '77'));
  await subscribed(member.subscribe('presence-pt-api-term'));

  // pusher-js (Node build) answers a refusing close code by calling close() on its already
  // closed faye-websocket, which arms a 30 s timer that keeps the process alive; clear it.
  const socket = signedIn.connection.connection?.transport?.socket;

  const body = await ok(serverSdk().terminateUserConnections('77'));
  assert.deepEqual(body, {});
  await waitFor(() => signedIn.connection.state !== 'connected', 5000, 'the signed-in connection to close');
  await sleep(50);
  if (socket?._closeTimer) clearTimeout(socket._closeTimer);
  await sleep(300);
  assert.equal(member.connection.state, 'connected', 'a connection that did not sign in was closed');
});

test('wrong secret: 401 and the body names the signature and the string to sign', async () => {
  const { status, body } = await refused(serverSdk({ secret: 'not-the-secret' }).trigger(PUBLIC, 'x', {}));
  assert.equal(status, 401);
  assert.equal(typeof body.error, 'string');
  assert.match(body.error, /signature/i);
  assert.ok(body.error.includes(`/apps/${target.appId}/events`), `no signed path in: ${body.error}`);
  assert.ok(body.error.includes(`auth_key=${target.key}`), `no signed query in: ${body.error}`);
});

test('expired auth_timestamp (700 s old): 401 "Timestamp expired"', async () => {
  const realNow = Date.now;
  let call;
  Date.now = () => realNow() - 700_000;
  try {
    // The SDK reads the clock synchronously while signing.
    call = serverSdk().get({ path: `/channels/${PUBLIC}` });
  } finally {
    Date.now = realNow;
  }
  const { status, body } = await refused(call);
  assert.equal(status, 401);
  assert.match(body.error, /^Timestamp expired/);
});

test('event data of exactly 10 KB is accepted', async () => {
  const { chans: [ch] } = await subscriber('pt-api-10k');
  const data = 'x'.repeat(10 * 1024);
  const got = nextCall((cb) => ch.bind('big', cb));
  assert.deepEqual(await ok(serverSdk().trigger('pt-api-10k', 'big', data)), {});
  assert.equal(await got, data);
});

test('event data over 10 KB: 413 and nothing is delivered', async () => {
  const { chans: [ch] } = await subscriber('pt-api-too-big');
  const seen = [];
  ch.bind('too-big', (d) => seen.push(d));
  const { status, body } = await refused(serverSdk().trigger('pt-api-too-big', 'too-big', 'x'.repeat(10 * 1024 + 1)));
  assert.equal(status, 413);
  assert.equal(typeof body.error, 'string');
  await sleep(200);
  assert.deepEqual(seen, []);
});

test('triggerBatch with one item over 10 KB: 413 and no item is delivered', async () => {
  const { chans: [ch] } = await subscriber('pt-api-batch-big');
  const seen = [];
  ch.bind('small', (d) => seen.push(d));
  const { status } = await refused(
    serverSdk().triggerBatch([
      { channel: 'pt-api-batch-big', name: 'small', data: 'ok' },
      { channel: 'pt-api-batch-big', name: 'big', data: 'x'.repeat(10 * 1024 + 1) },
    ]),
  );
  assert.equal(status, 413);
  await sleep(200);
  assert.deepEqual(seen, [], 'the valid item of a refused batch was delivered');
});
