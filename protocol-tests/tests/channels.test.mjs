// Every channel type through pusher-js and Laravel Echo, authorized over real HTTP.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { echoClient, pusherClient, serverSdk, connected, nextCall, subscribed, closeAll } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';

let auth;
before(async () => {
  auth = await startAuthServer();
});
after(async () => {
  closeAll();
  await auth.close();
});

test('public channel: pusher-js receives an event triggered by the Node SDK', async () => {
  const p = pusherClient();
  const ch = p.subscribe('pt-public');
  await subscribed(ch);
  const got = nextCall((cb) => ch.bind('greet', cb));
  await serverSdk().trigger('pt-public', 'greet', { hello: 'world' });
  assert.deepEqual(await got, { hello: 'world' });
});

test('private channel: Echo .private() authorizes through /broadcasting/auth and receives', async () => {
  const echo = echoClient(authOptions(auth, '5'));
  const got = nextCall((cb) => echo.private('pt-orders.5').listen('.status', cb));
  await subscribed(echo.connector.pusher.channel('private-pt-orders.5'));
  await serverSdk().trigger('private-pt-orders.5', 'status', { s: 'confirmed' });
  assert.deepEqual(await got, { s: 'confirmed' });
});

test('private channel: a 403 from the auth endpoint reaches Echo .error()', async () => {
  const echo = echoClient(authOptions(auth, '5'));
  const err = await nextCall((cb) => echo.private('pt-forbidden').error(cb));
  assert.equal(err.status, 403);
});
