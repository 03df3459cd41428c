// The client-side subscription count (docs/protocol.md §3.7) with pusher-js 8 and Laravel Echo 2:
// pusher-js turns pusher_internal:subscription_count into `pusher:subscription_count` on the
// channel and keeps channel.subscriptionCount; Echo reaches it with
// .listen('.pusher:subscription_count'). On the FEATURES app (enable_subscription_count,
// lib/features.mjs). In the cluster run the subscribers of one channel are on different nodes,
// so the counts are the cluster's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pusherClient, echoClient, onNode, subscribed, nextCall, waitFor, sleep, closeAll, unique } from '../lib/target.mjs';
import { startAuthServer, authOptions } from '../lib/auth-server.mjs';
import { FEATURES, featuresSkip, sdkFor } from '../lib/features.mjs';

const WAIT = 10_000;
let auth = null;

before(async () => {
  if (!featuresSkip) auth = await startAuthServer({ sdk: sdkFor(FEATURES) });
});

after(async () => {
  closeAll();
  await auth?.close();
});

const last = (list) => list[list.length - 1];

/** Subscribes a pusher-js client on `node` to `name`; `log` gets 'subscribed' and each count, in order. */
function countingSubscriber(name, node) {
  const p = pusherClient({ key: FEATURES.key, ...authOptions(auth, String(node + 1)), ...onNode(node) });
  const channel = p.subscribe(name);
  const log = [];
  channel.bind('pusher:subscription_succeeded', () => log.push('subscribed'));
  channel.bind('pusher:subscription_count', (data) => log.push(data.subscription_count));
  return { pusher: p, channel, log, counts: () => log.filter((x) => x !== 'subscribed') };
}

test(
  'pusher-js channel.bind("pusher:subscription_count"): 1 after the first subscription succeeds, 2 to both when another client subscribes, 1 after it unsubscribes; channel.subscriptionCount follows',
  { skip: featuresSkip },
  async () => {
    const name = unique('pt-count');
    const a = countingSubscriber(name, 0);
    await waitFor(() => a.counts().length >= 1, WAIT, `a count on ${name} (log ${JSON.stringify(a.log)})`);
    assert.deepEqual(a.log, ['subscribed', 1], 'the first count comes after subscription_succeeded');
    assert.equal(a.channel.subscriptionCount, 1);

    const b = countingSubscriber(name, 1);
    await waitFor(() => last(a.log) === 2 && last(b.log) === 2, WAIT, `2 to both (a ${JSON.stringify(a.log)}, b ${JSON.stringify(b.log)})`);
    assert.deepEqual(b.log, ['subscribed', 2]);
    assert.equal(b.channel.subscriptionCount, 2);

    b.pusher.unsubscribe(name);
    await waitFor(() => last(a.log) === 1 && a.counts().length >= 3, WAIT, `1 after the unsubscribe (a ${JSON.stringify(a.log)})`);
    await sleep(300);
    assert.deepEqual(a.log, ['subscribed', 1, 2, 1]);
    assert.equal(a.channel.subscriptionCount, 1);
    assert.deepEqual(b.log, ['subscribed', 2], 'no count after unsubscribing');
  },
);

test(
  "Echo .listen('.pusher:subscription_count') on a public channel (pusher broadcaster) and a private one (reverb broadcaster): the count goes up when a client subscribes and down when it disconnects",
  { skip: featuresSkip },
  async () => {
    const name = unique('pt-viewers');
    const watch = (channel, into) => channel.listen('.pusher:subscription_count', (e) => into.push(e.subscription_count));

    const publicCounts = [];
    const privateCounts = [];
    const first = echoClient({ key: FEATURES.key, ...authOptions(auth, '41'), ...onNode(0) });
    watch(first.channel(name), publicCounts);
    const reverb = echoClient({ broadcaster: 'reverb', key: FEATURES.key, ...authOptions(auth, '41'), ...onNode(1) });
    watch(reverb.private(name), privateCounts);
    await waitFor(() => last(publicCounts) === 1 && last(privateCounts) === 1, WAIT, `1 on both channels (${publicCounts}; ${privateCounts})`);

    const second = echoClient({ key: FEATURES.key, ...authOptions(auth, '42'), ...onNode(1) });
    second.channel(name);
    second.private(name);
    await waitFor(() => last(publicCounts) === 2 && last(privateCounts) === 2, WAIT, `2 on both channels (${publicCounts}; ${privateCounts})`);

    second.disconnect();
    await waitFor(() => last(publicCounts) === 1 && last(privateCounts) === 1 && publicCounts.length >= 3 && privateCounts.length >= 3, WAIT, `1 after the disconnect (${publicCounts}; ${privateCounts})`);
    await sleep(300);
    assert.deepEqual(publicCounts, [1, 2, 1]);
    assert.deepEqual(privateCounts, [1, 2, 1]);
  },
);

test('presence channel: member events, and no pusher:subscription_count', { skip: featuresSkip }, async () => {
  const name = unique('presence-pt-count');
  const counts = [];
  const p1 = pusherClient({ key: FEATURES.key, ...authOptions(auth, '51'), ...onNode(0) });
  const ch1 = p1.subscribe(name);
  ch1.bind('pusher:subscription_count', (d) => counts.push(d));
  await subscribed(ch1);
  const added = nextCall((cb) => ch1.bind('pusher:member_added', cb), WAIT, 'member_added');
  const p2 = pusherClient({ key: FEATURES.key, ...authOptions(auth, '52'), ...onNode(1) });
  const ch2 = p2.subscribe(name);
  ch2.bind('pusher:subscription_count', (d) => counts.push(d));
  await subscribed(ch2);
  assert.equal((await added).id, '52');
  await sleep(300);
  assert.deepEqual(counts, []);
});
