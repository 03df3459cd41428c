// The apps of Pusher's optional app features (docs/protocol.md §3.5–§3.8), each switched on in
// its own app so the main app (PT_APP_*) stays a plain one whose frames the other tests know:
// subscription counts would otherwise reach every public subscriber of every test.
//
//   FEATURES  enable_subscription_count, enable_watchlist_events, and the example page's
//             recorded channel `demo` (tests/subscription-count, watchlist, browser)
//   GUARDED   authorized_connections_timeout = 1 (tests/access)
//   ORIGINS   allowed_origins = ["localhost"], allow_missing_origin = false (tests/access)
//
// run.mjs writes these tables into the config of the Clarion it starts (appTables()). Against
// another server (PT_EXTERNAL=1) the tests that need them are reported as skipped, not passed;
// PT_FEATURES=1 runs them, for a server configured with the same apps (ids, keys, secrets and
// switches as below).
export const FEATURES = { appId: '234567', key: 'pt-features-key', secret: 'pt-features-secret' };
export const GUARDED = { appId: '345678', key: 'pt-guarded-key', secret: 'pt-guarded-secret', timeoutSeconds: 1 };
export const ORIGINS = { appId: '456789', key: 'pt-origins-key', secret: 'pt-origins-secret', allowed: 'localhost' };

/** false, or why the tests of these apps are skipped. */
export const featuresSkip =
  process.env.PT_EXTERNAL === '1' && process.env.PT_FEATURES !== '1'
    ? 'needs the apps lib/features.mjs describes (off by default on any server; PT_FEATURES=1 runs them against one configured so)'
    : false;

/** The [[apps]] tables for run.mjs's config (TOML lines). */
export function appTables() {
  const app = (a) => [`[[apps]]`, `id = "${a.appId}"`, `key = "${a.key}"`, `secret = "${a.secret}"`];
  return [
    ...app(FEATURES),
    'enable_client_messages = true',
    'enable_subscription_count = true',
    'enable_watchlist_events = true',
    '[[apps.recovery]]',
    'channels = ["demo"]',
    ...app(GUARDED),
    `authorized_connections_timeout = ${GUARDED.timeoutSeconds}`,
    ...app(ORIGINS),
    `allowed_origins = ["${ORIGINS.allowed}"]`,
    'allow_missing_origin = false',
  ];
}

/** Overrides for serverSdk() (and startAuthServer()) that make it sign for `app`. */
export const sdkFor = (app) => ({ appId: app.appId, key: app.key, secret: app.secret });
