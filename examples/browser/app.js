// The browser example's page logic: one Echo connection, three channels, and missed-message
// recovery (docs/recovery.md) as in examples/vue/echo.js. An ES module: index.html's import map
// names laravel-echo and @clarion/echo-recovery; pusher-js is the classic script before it.
import Echo from 'laravel-echo';
import { withRecovery } from '@clarion/echo-recovery';

{
  const $ = (id) => document.getElementById(id);
  // data-* attributes (data-event, data-id, data-state) are for scripts such as the
  // protocol-tests browser test, which drives this page.
  const add = (list, text, atEnd = false, data = {}) => {
    const li = document.createElement('li');
    li.textContent = text;
    Object.assign(li.dataset, data);
    $(list)[atEnd ? 'append' : 'prepend'](li); // newest first, unless atEnd
    return li;
  };
  const time = () => new Date().toLocaleTimeString();

  // Who this tab is: ?user=alice, or a random guest kept for this tab across reloads.
  const user =
    new URLSearchParams(location.search).get('user') ||
    sessionStorage.getItem('demo-user') ||
    `guest-${Math.random().toString(36).slice(2, 6)}`;
  sessionStorage.setItem('demo-user', user);
  $('me').textContent = user;

  const config = await (await fetch('/config.json')).json();
  const headers = { 'X-Demo-User': user }; // stands in for Laravel's session cookie
  const echo = new Echo({
    broadcaster: 'pusher',
    Pusher: window.Pusher,
    key: config.key,
    cluster: 'mt1', // required by pusher-js, unused by Clarion
    wsHost: config.wsHost,
    wsPort: config.wsPort,
    wssPort: config.wsPort,
    forceTLS: config.forceTLS,
    enabledTransports: ['ws', 'wss'],
    authEndpoint: '/broadcasting/auth',
    auth: { headers },
    userAuthentication: { endpoint: '/broadcasting/user-auth', headers },
  });
  window.echo = echo;

  // Missed-message recovery: every subscribe carries the channel's last position, so a channel
  // Clarion records ([[apps.recovery]]; examples/browser/clarion.toml records `demo`) replays
  // what this tab missed while it was offline, or says it cannot. Positions are kept in
  // sessionStorage, so a reload of the tab resumes too. Elsewhere the plugin changes nothing.
  const recovery = withRecovery(echo.connector.pusher, { persist: 'session' });
  window.recovery = recovery;

  // Connection state. pusher-js reconnects and re-subscribes by itself: stop Clarion and start
  // it again to watch "unavailable" turn back into "connected".
  const pusher = echo.connector.pusher;
  pusher.connection.bind('state_change', ({ current }) => {
    $('state').textContent = current;
    $('state').dataset.state = current;
    $('socket-id').textContent = pusher.connection.socket_id || '–';
  });
  pusher.connection.bind('error', (e) => add('errors', `${time()} connection: ${JSON.stringify(e.data ?? e.error ?? e.type)}`));

  // Sign-in (Laravel's /broadcasting/user-auth): lets the server address this user directly,
  // e.g. examples/scripts/trigger.sh '#server-to-user-alice' hello '{"text":"just you"}'.
  pusher.signin();
  pusher.user.bind_global((event, data) => {
    if (!event.startsWith('pusher')) add('events', `${time()} to you: ${event} ${JSON.stringify(data)}`);
  });

  // Who of the team is online (watchlist events): the sign-in's user_data names them
  // (serve.mjs); right after it Clarion says who is online and who is not, then each change:
  // a user's first tab anywhere (online), their last one gone (offline). After a reconnect the
  // sign-in is repeated and the whole list comes again.
  const team = new Map();
  const showTeam = (status) => ({ user_ids }) => {
    for (const id of user_ids) team.set(id, status);
    $('team').replaceChildren();
    for (const id of [...team.keys()].sort()) add('team', `${id}: ${team.get(id)}`, true, { id, status: team.get(id) });
  };
  pusher.user.watchlist.bind('online', showTeam('online'));
  pusher.user.watchlist.bind('offline', showTeam('offline'));

  // 1. Public channel: every event, whatever its name; after a reconnect, first the ones this
  //    tab missed, then clarion:recovery, which says whether they were all replayed.
  const showRecovery = (r) => {
    const line = $('recovery');
    line.hidden = false;
    line.dataset.state = r.recovered ? 'recovered' : 'failed';
    line.dataset.reason = r.reason ?? '';
    if (r.recovered) {
      line.textContent = `${time()} back online: ${r.replayed} missed event(s) replayed below, none lost`;
      return;
    }
    // Clarion could not replay them (restarted, history purged or expired, too far behind): a
    // real app reloads its data from the backend now.
    line.textContent = `${time()} back online, but events published while this tab was away are lost (${r.reason}). `;
    const reload = document.createElement('button');
    reload.textContent = 'Reload';
    reload.addEventListener('click', () => location.reload());
    line.append(reload);
  };
  echo
    .channel('demo')
    .subscribed(() => ($('events').dataset.state = 'subscribed'))
    // The live viewer count (enable_subscription_count): Clarion sends it to every subscriber
    // after each subscribe and unsubscribe anywhere in the cluster; pusher-js re-emits it as
    // pusher:subscription_count.
    .listen('.pusher:subscription_count', ({ subscription_count: n }) => {
      $('viewers').textContent = n === 1 ? '1 tab' : `${n} tabs`;
      $('viewers').dataset.count = n;
    })
    .listen('.clarion:recovery', showRecovery)
    .listenToAll((event, data) => {
      const name = event.replace(/^\./, '');
      if (name.startsWith('clarion:')) return; // the recovery marker, shown above
      add('events', `${time()} ${name} ${JSON.stringify(data)}`, false, { event: name });
    });
  $('publish-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const res = await fetch('/trigger', {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ text: $('publish-text').value }),
    });
    if (!res.ok) add('errors', `${time()} publish: HTTP ${res.status} ${await res.text()}`);
    $('publish-text').value = '';
  });

  // 2. Presence: the members, kept current by here/joining/leaving. Several tabs of one user
  //    are one member.
  const members = new Map();
  const showMembers = () => {
    $('members').replaceChildren();
    for (const name of [...members.keys()].sort()) add('members', name === user ? `${name} (you)` : name, true, { id: name });
  };
  echo
    .join('demo')
    .here((list) => {
      members.clear();
      for (const m of list) members.set(m.name, m);
      showMembers();
      $('members').dataset.state = 'subscribed';
    })
    .joining((m) => {
      members.set(m.name, m);
      showMembers();
    })
    .leaving((m) => {
      members.delete(m.name);
      showMembers();
    })
    .error((e) => add('errors', `${time()} presence-demo: ${JSON.stringify(e)}`));

  // 3. Whispers (client events) on a private channel: they go browser to browser through
  //    Clarion, never through the app's server.
  const privateChannel = echo
    .private('demo')
    .listenForWhisper('message', (m) => add('whispers', `${time()} ${m.from}: ${m.text}`))
    .error((e) => add('errors', `${time()} private-demo: ${JSON.stringify(e)}`));
  $('whisper-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('whisper-text').value;
    if (!text) return;
    privateChannel.whisper('message', { from: user, text });
    add('whispers', `${time()} you: ${text}`);
    $('whisper-text').value = '';
  });
}
