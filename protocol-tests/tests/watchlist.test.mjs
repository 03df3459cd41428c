// Watchlist events (docs/protocol.md §3.8) with pusher-js 8: pusher.signin() through the auth
// server's /broadcasting/user-auth, whose signed user_data carries a `watchlist` (as a Laravel
// app's user-authentication callback returns it: integer ids stay JSON numbers), and
// pusher.user.watchlist.bind('online' | 'offline', …). On the FEATURES app
// (enable_watchlist_events, lib/features.mjs). In the cluster run the watcher is on the first
// node and the users it watches sign in on the second.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pusherClient, connected, onNode, subscribed, waitFor, sleep, closeAll, recorder, unique } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';
import { FEATURES, featuresSkip, sdkFor } from '../lib/features.mjs';

const WAIT = 10_000;
/** The watchlist each user's signed user_data carries (none for a user not in the map). */
const watchlists = new Map();
let auth = null;

before(async () => {
  if (featuresSkip) return;
  auth = await startAuthServer({
    sdk: sdkFor(FEATURES),
    userData: (id) => (watchlists.has(id) ? { watchlist: watchlists.get(id) } : {}),
  });
});

after(async () => {
  closeAll();
  await auth?.close();
});

/**
 * A pusher-js client of the FEATURES app on node `node`, signed in as `id`: resolves once
 * pusher:signin_success has arrived and #server-to-user-{id} is subscribed. `events` records
 * what pusher.user.watchlist emits ({name, user_ids}), bound before the sign-in.
 */
async function signedIn(id, node) {
  const p = pusherClient({ key: FEATURES.key, ...authOptions(auth, id), ...onNode(node) });
  const events = [];
  p.user.watchlist.bind('online', (e) => events.push(e));
  p.user.watchlist.bind('offline', (e) => events.push(e));
  const signinError = recorder();
  p.user.bind('pusher:signin_error', signinError.cb);
  const serverError = recorder();
  p.connection.bind('error', serverError.cb);
  await connected(p);
  p.signin();
  await waitFor(() => p.user.serverToUserChannel || signinError.calls.length || serverError.calls.length, WAIT, `sign-in of ${id}`);
  assert.deepEqual(signinError.calls, [], 'the user-auth request failed');
  assert.deepEqual(serverError.calls, [], 'the server refused the sign-in');
  await subscribed(p.user.serverToUserChannel);
  return { pusher: p, events };
}

/** A user id no other test or run uses, as a number (Laravel's users.id). */
const numericId = () => 1_000_000 + Math.floor(Math.random() * 8_000_000_000);

test(
  'pusher-js signin() with a watchlist: pusher.user.watchlist gets online for the watched users already signed in (integer ids as strings), offline for the others',
  { skip: featuresSkip },
  async () => {
    const here = numericId();
    const away = unique('wl-away');
    const watched = await signedIn(String(here), 1);
    const watcher = unique('wl-watcher');
    watchlists.set(watcher, [here, away]);
    const w = await signedIn(watcher, 0);
    await waitFor(() => w.events.length >= 2, WAIT, `the watchlist at sign-in (so far ${JSON.stringify(w.events)})`);
    await sleep(200);
    assert.deepEqual(w.events, [
      { name: 'online', user_ids: [String(here)] },
      { name: 'offline', user_ids: [away] },
    ]);
    assert.deepEqual(watched.events, [], 'a user without a watchlist gets no watchlist events');
  },
);

test(
  'pusher.user.watchlist: a watched pusher-js user signing in gives online, a second tab gives nothing, the last tab disconnecting gives offline',
  { skip: featuresSkip },
  async () => {
    const user = unique('wl-user');
    const watcher = unique('wl-watcher');
    watchlists.set(watcher, [user]);
    const w = await signedIn(watcher, 0);
    await waitFor(() => w.events.length >= 1, WAIT, 'the watchlist at sign-in');
    assert.deepEqual(w.events, [{ name: 'offline', user_ids: [user] }]);

    const tab1 = await signedIn(user, 1);
    await waitFor(() => w.events.length >= 2, WAIT, `online for ${user} (so far ${JSON.stringify(w.events)})`);
    assert.deepEqual(w.events[1], { name: 'online', user_ids: [user] });

    // A second tab of the same user, then that tab gone: neither is a transition.
    const tab2 = await signedIn(user, 0);
    tab2.pusher.disconnect();
    await sleep(1000);
    assert.equal(w.events.length, 2, `a second tab changed the status: ${JSON.stringify(w.events)}`);

    tab1.pusher.disconnect();
    await waitFor(() => w.events.length >= 3, WAIT, `offline for ${user} (so far ${JSON.stringify(w.events)})`);
    await sleep(300);
    assert.deepEqual(w.events, [
      { name: 'offline', user_ids: [user] },
      { name: 'online', user_ids: [user] },
      { name: 'offline', user_ids: [user] },
    ]);
    assert.deepEqual([...tab1.events, ...tab2.events], [], 'watching is one-way');
    assert.equal(w.pusher.connection.state, 'connected');
  },
);
