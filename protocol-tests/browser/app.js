// Connects Laravel Echo (pusher broadcaster, pusher-js underneath) as configured by the query
// string and mirrors everything it sees into the DOM (see index.html).
(function () {
  const q = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const setState = (key, value) => {
    document.body.dataset[key] = value;
    const el = $(`${key}-state`) || $(key);
    if (el) el.textContent = value;
  };
  const error = (what, detail) => {
    const li = document.createElement('li');
    li.textContent = `${what}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`;
    $('errors').appendChild(li);
  };

  const port = Number(q.get('port'));
  const echo = new Echo.default({
    broadcaster: 'pusher',
    Pusher: window.Pusher,
    key: q.get('key'),
    cluster: 'local',
    wsHost: q.get('host'),
    wsPort: port,
    wssPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    authEndpoint: q.get('auth'),
  });
  window.echo = echo;

  const pusher = echo.connector.pusher;
  pusher.connection.bind('state_change', ({ current }) => {
    setState('connection', current);
    $('socket-id').textContent = pusher.connection.socket_id || '–';
  });
  pusher.connection.bind('error', (e) => error('connection', e && (e.error || e.data || e.type)));

  const publicName = q.get('channel');
  $('public-name').textContent = publicName;
  echo
    .channel(publicName)
    .subscribed(() => setState('public', 'subscribed'))
    .error((e) => {
      setState('public', 'error');
      error(publicName, e);
    })
    .listenToAll((event, data) => {
      const li = document.createElement('li');
      li.dataset.event = event.replace(/^\./, '');
      li.textContent = `${event} ${JSON.stringify(data)}`;
      $('events').appendChild(li);
    });

  const presenceName = q.get('presence');
  $('presence-name').textContent = `presence-${presenceName}`;
  const memberItem = (m) => {
    const li = document.createElement('li');
    li.dataset.id = String(m.id);
    li.textContent = `${m.id} ${m.info && m.info.name ? m.info.name : ''}`.trim();
    return li;
  };
  const showMember = (m) => {
    if (!document.querySelector(`#members li[data-id="${CSS.escape(String(m.id))}"]`)) $('members').appendChild(memberItem(m));
  };
  // Echo passes plain user_info objects to here/joining/leaving; the ids come from pusher-js.
  const channel = echo.join(presenceName);
  const members = () => channel.subscription.members;
  channel
    .here(() => {
      $('members').replaceChildren();
      members().each((m) => showMember(m));
      setState('presence', 'subscribed');
    })
    .joining(() => members().each((m) => showMember(m)))
    .leaving(() => {
      const present = new Set();
      members().each((m) => present.add(String(m.id)));
      for (const li of [...$('members').children]) if (!present.has(li.dataset.id)) li.remove();
    })
    .error((e) => {
      setState('presence', 'error');
      error(`presence-${presenceName}`, e);
    });
})();
