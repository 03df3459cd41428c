// An auth endpoint that answers like Laravel's Broadcast::routes(): form-encoded `socket_id` and
// `channel_name` in, `{"auth":…}` (+ `channel_data` for presence, `shared_secret` for encrypted)
// out; `/broadcasting/user-auth` answers `{"auth":…,"user_data":…}`. The user is named by the
// `Authorization: Bearer <id>` header that Echo sends from `auth.headers`. Channels whose name
// contains `forbidden` are denied with 403, as a failed channel callback in routes/channels.php.
//
// Options: `sdk`, overrides for serverSdk() (another app's id, key and secret: lib/features.mjs
// sdkFor()); `userData(id)`, more fields for the signed user_data of user `id` (a `watchlist`, as
// a Laravel app returns from its user-authentication callback).
import http from 'node:http';
import { serverSdk } from './target.mjs';

export async function startAuthServer({ sdk: overrides = {}, userData = () => ({}) } = {}) {
  const sdk = serverSdk(overrides);
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      const user = (req.headers.authorization ?? '').replace(/^Bearer /, '') || '1';
      const socketId = form.get('socket_id');
      const reply = (status, obj) => {
        res.writeHead(status, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
        res.end(JSON.stringify(obj));
      };
      try {
        if (req.url.startsWith('/broadcasting/user-auth')) {
          return reply(200, sdk.authenticateUser(socketId, { id: user, name: `User ${user}`, ...userData(user) }));
        }
        const channel = form.get('channel_name');
        if (!channel || channel.includes('forbidden')) return reply(403, { message: 'This action is unauthorized.' });
        if (channel.startsWith('presence-')) {
          // Laravel always sends the user id as a string.
          return reply(200, sdk.authorizeChannel(socketId, channel, { user_id: String(user), user_info: { name: `User ${user}` } }));
        }
        return reply(200, sdk.authorizeChannel(socketId, channel));
      } catch (e) {
        return reply(500, { message: String(e) });
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((r) => server.close(r)),
  };
}

/** Echo/pusher-js options that authorize through the auth server as user `id`. */
export function authOptions(auth, id) {
  const headers = { Authorization: `Bearer ${id}` };
  return {
    authEndpoint: `${auth.url}/broadcasting/auth`,
    auth: { headers },
    userAuthentication: { endpoint: `${auth.url}/broadcasting/user-auth`, transport: 'ajax', headers },
    channelAuthorization: { endpoint: `${auth.url}/broadcasting/auth`, transport: 'ajax', headers },
  };
}
