// resources/js/echo.js: Laravel Echo + pusher-js pointed at Clarion.
//
//   npm install --save-dev laravel-echo pusher-js
//   import './echo'   (in resources/js/bootstrap.js or app.js, after window.axios is set up,
//                      so that Echo adds the X-Socket-ID header that ->toOthers() needs)
//
// The VITE_* variables come from .env (see examples/laravel/.env.example): they hold the
// address the *browser* uses to reach Clarion.
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';
// Missed-message recovery (docs/recovery.md): `npm install <path to clarion>/clients/echo-recovery`
// (one ES module, no build step). With it, channels that Clarion records ([[apps.recovery]])
// replay what a tab missed while it was offline, or say they cannot.
import { withRecovery } from '@clarion/echo-recovery';

window.Pusher = Pusher;

const port = Number(import.meta.env.VITE_PUSHER_PORT ?? 6001);

window.Echo = new Echo({
  broadcaster: 'pusher',
  key: import.meta.env.VITE_PUSHER_APP_KEY,
  // pusher-js throws without a cluster; with wsHost set its value is never used.
  cluster: import.meta.env.VITE_PUSHER_APP_CLUSTER ?? 'mt1',
  wsHost: import.meta.env.VITE_PUSHER_HOST ?? window.location.hostname,
  wsPort: port,
  wssPort: port,
  // ws:// to Clarion on plain http. A page served over https makes pusher-js use wss://
  // anyway: then put a TLS proxy in front of Clarion, or give Clarion tls_cert/tls_key.
  forceTLS: (import.meta.env.VITE_PUSHER_SCHEME ?? 'http') === 'https',
  // WebSocket only: no fallback to Pusher's HTTP streaming/polling, which Clarion does not serve.
  enabledTransports: ['ws', 'wss'],
  // wsPath: '/ws',   // only if Clarion runs with path_prefix = "/ws"

  // Private and presence channels are authorized by Laravel's POST /broadcasting/auth with the
  // session cookie and the CSRF token from <meta name="csrf-token">: nothing to set. An SPA on
  // Sanctum tokens sends its token instead (and registers the routes with auth:sanctum):
  // auth: { headers: { Authorization: `Bearer ${token}` } },
});

// Positions survive a reload of the tab (sessionStorage), so a provider who reloads gets what
// was booked meanwhile too.
window.EchoRecovery = withRecovery(window.Echo.connector.pusher, { persist: 'session' });

// The same with Laravel's `reverb` broadcaster (BROADCAST_CONNECTION=reverb and the REVERB_*
// variables). Echo then supplies the cluster itself; everything else is identical:
//
// const reverbPort = Number(import.meta.env.VITE_REVERB_PORT ?? 6001);
// window.Echo = new Echo({
//   broadcaster: 'reverb',
//   key: import.meta.env.VITE_REVERB_APP_KEY,
//   wsHost: import.meta.env.VITE_REVERB_HOST ?? window.location.hostname,
//   wsPort: reverbPort,
//   wssPort: reverbPort,
//   forceTLS: (import.meta.env.VITE_REVERB_SCHEME ?? 'http') === 'https',
//   enabledTransports: ['ws', 'wss'],
// });

export default window.Echo;
