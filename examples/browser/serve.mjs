// The browser example's server: serves the page, pusher-js, Laravel Echo and the recovery plugin
// (clients/echo-recovery), and plays the part of your Laravel app: /broadcasting/auth and
// /broadcasting/user-auth sign with the app secret (what Broadcast::routes() does), and POST
// /trigger publishes an event through Clarion's HTTP API (what broadcast() does). Clarion itself
// must already be running.
//
//   (cd protocol-tests && npm ci)        once: pusher-js, laravel-echo and the `pusher` SDK
//   cargo run -- --config examples/browser/clarion.toml
//                                        Clarion with its development app on 127.0.0.1:6001,
//                                        recording the page's channel `demo` (plain `cargo run`
//                                        works too, without recovery)
//   cargo run -- --env-file examples/laravel/.env.example
//                                        or Clarion from the marketplace example's .env alone:
//                                        the same app, without recovery, viewer count or team
//                                        status (protocol-tests/tests/laravel-env.test.mjs)
//   node examples/browser/serve.mjs      then open the printed URL, in two tabs
//
// Missed-message recovery (docs/recovery.md): take one tab offline (in its console:
// `echo.connector.pusher.disconnect()`), publish from the other tab, and bring it back
// (`echo.connector.pusher.connect()`): the events it missed appear, then a green "none lost"
// line. A reload of the tab resumes the same way (positions are kept in sessionStorage). When
// Clarion cannot replay them (restart Clarion: its history is in memory, so it starts a new one),
// a red line says the tab missed events and offers a reload, where a real app reloads its data
// from the backend.
//
// Who is online: /broadcasting/user-auth puts a `watchlist` (the demo team, TEAM below, less the
// user) into the signed user_data, so Clarion tells the page which of them are signed in anywhere
// and when that changes (the app needs enable_watchlist_events). The viewer count of `demo` comes
// from Clarion too (enable_subscription_count). examples/browser/clarion.toml switches both on.
//
// Environment:
//   CLARION_URL         Clarion as both this server and the browser reach it
//                       (default http://127.0.0.1:6001)
//   CLARION_APP_ID, CLARION_APP_KEY, CLARION_APP_SECRET
//                       default app-id / app-key / app-secret (the development app); for whispers
//                       the app needs enable_client_messages (the development app has it)
//   PORT                this server's port (default 8080; 0 picks a free one)
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.resolve(here, '../../protocol-tests/node_modules');
if (!fs.existsSync(path.join(modules, 'pusher-js')) || !fs.existsSync(path.join(modules, 'laravel-echo'))) {
  console.error(`${modules} is missing pusher-js or laravel-echo: run "cd protocol-tests && npm ci" once.`);
  process.exit(1);
}
const PusherServer = createRequire(path.join(modules, '..', 'package.json'))('pusher');

const clarion = new URL(process.env.CLARION_URL ?? 'http://127.0.0.1:6001');
const tls = clarion.protocol === 'https:';
const app = {
  id: process.env.CLARION_APP_ID ?? 'app-id',
  key: process.env.CLARION_APP_KEY ?? 'app-key',
  secret: process.env.CLARION_APP_SECRET ?? 'app-secret',
};
const sdk = new PusherServer({
  appId: app.id,
  key: app.key,
  secret: app.secret,
  host: clarion.hostname,
  port: clarion.port || (tls ? '443' : '80'),
  useTLS: tls,
});

// What the page needs to connect (never the secret).
const pageConfig = {
  key: app.key,
  wsHost: clarion.hostname,
  wsPort: Number(clarion.port || (tls ? 443 : 80)),
  forceTLS: tls,
};

const FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/vendor/pusher.min.js': [path.join(modules, 'pusher-js/dist/web/pusher.min.js'), 'text/javascript; charset=utf-8'],
  '/vendor/echo.js': [path.join(modules, 'laravel-echo/dist/echo.js'), 'text/javascript; charset=utf-8'],
  '/vendor/echo-recovery.mjs': [path.resolve(here, '../../clients/echo-recovery/index.mjs'), 'text/javascript; charset=utf-8'],
};

// The users whose online status every page shows (open tabs as ?user=bob, ?user=carol, …).
const TEAM = ['alice', 'bob', 'carol', 'dave'];

const send = (res, status, type, body) => {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
};
const json = (res, status, obj) => send(res, status, 'application/json', JSON.stringify(obj));

async function handle(req, res) {
  const { pathname } = new URL(req.url, 'http://x');
  if (req.method === 'GET' && FILES[pathname]) {
    const [file, type] = FILES[pathname];
    return send(res, 200, type, fs.readFileSync(path.resolve(here, file)));
  }
  if (req.method === 'GET' && pathname === '/config.json') return json(res, 200, pageConfig);
  if (pathname === '/favicon.ico') return send(res, 204, 'image/x-icon', '');
  if (req.method !== 'POST') return send(res, 404, 'text/plain', 'not found');

  let body = '';
  for await (const chunk of req) body += chunk;
  // A real app knows the user from its session; the demo takes the name the page sends.
  const user = String(req.headers['x-demo-user'] ?? '').slice(0, 40) || 'guest';

  if (pathname === '/broadcasting/auth') {
    // pusher-js posts socket_id and channel_name, form-encoded, before each private or
    // presence subscription. Here everyone may join everything; routes/channels.php decides
    // in a Laravel app.
    const form = new URLSearchParams(body);
    const channel = form.get('channel_name') ?? '';
    const presence = channel.startsWith('presence-') ? { user_id: user, user_info: { name: user } } : undefined;
    return json(res, 200, sdk.authorizeChannel(form.get('socket_id'), channel, presence));
  }
  if (pathname === '/broadcasting/user-auth') {
    // pusher.signin() posts socket_id. The signed user_data may carry a watchlist: the ids
    // whose online status Clarion reports to this connection (at most 100).
    const form = new URLSearchParams(body);
    const watchlist = TEAM.filter((u) => u !== user);
    return json(res, 200, sdk.authenticateUser(form.get('socket_id'), { id: user, name: user, watchlist }));
  }
  if (pathname === '/trigger') {
    // The page's "Publish" button: one signed POST /apps/{id}/events, as Laravel sends it.
    const { text } = JSON.parse(body || '{}');
    const answer = await sdk.trigger('demo', 'news', { text: String(text ?? ''), from: user, at: new Date().toISOString() });
    return json(res, answer.status, await answer.json());
  }
  return send(res, 404, 'text/plain', 'not found');
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    // The SDK throws on a non-2xx answer from Clarion (wrong secret, Clarion not running, …).
    const message = e.body ?? e.message ?? String(e);
    json(res, e.status ?? 502, { error: typeof message === 'string' ? message : JSON.stringify(message) });
  });
});
server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => {
  const { port } = server.address();
  console.log(`Clarion browser example: http://127.0.0.1:${port}/   (Clarion at ${clarion.origin}, app key ${app.key})`);
  console.log('Open it in two tabs (add ?user=alice to choose a name). Ctrl-C stops it.');
});
