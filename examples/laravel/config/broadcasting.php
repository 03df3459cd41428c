<?php

// config/broadcasting.php for a Laravel 11/12 app that broadcasts through Clarion.
//
// Laravel publishes this file with `php artisan install:broadcasting` (or
// `php artisan config:publish broadcasting`); only the `pusher` and `reverb` entries differ from
// the stock file. Both drivers end up in the same PusherBroadcaster, which signs one
// `POST /apps/{app_id}/events` per event with the app secret. What matters for a self-hosted
// server: `host` must be set (otherwise the pusher driver talks to api-{cluster}.pusher.com),
// and `scheme`, `port` and `useTLS` must say plain http unless a TLS proxy sits in front.

return [

    'default' => env('BROADCAST_CONNECTION', 'null'),

    'connections' => [

        'pusher' => [
            'driver' => 'pusher',
            'key' => env('PUSHER_APP_KEY'),
            'secret' => env('PUSHER_APP_SECRET'),
            'app_id' => env('PUSHER_APP_ID'),
            'options' => [
                'cluster' => env('PUSHER_APP_CLUSTER', 'mt1'), // required by the SDKs, unused by Clarion
                'host' => env('PUSHER_HOST', '127.0.0.1'),
                'port' => env('PUSHER_PORT', 6001),
                'scheme' => env('PUSHER_SCHEME', 'http'),
                // `encrypted` is pusher-php-server's old name for `useTLS`; `useTLS` wins when
                // both are set, so with PUSHER_SCHEME=http the requests stay plain http.
                'encrypted' => true,
                'useTLS' => env('PUSHER_SCHEME', 'http') === 'https', // false for Clarion on http
                // 'path' => '/ws',  // only if Clarion runs with path_prefix = "/ws"
            ],
            'client_options' => [
                // Guzzle options, e.g. 'timeout' => 5 so a stopped Clarion cannot hold a request.
            ],
        ],

        'reverb' => [
            'driver' => 'reverb',
            'key' => env('REVERB_APP_KEY'),
            'secret' => env('REVERB_APP_SECRET'),
            'app_id' => env('REVERB_APP_ID'),
            'options' => [
                'host' => env('REVERB_HOST', '127.0.0.1'),
                'port' => env('REVERB_PORT', 6001),
                'scheme' => env('REVERB_SCHEME', 'http'),
                'encrypted' => true, // as above: `useTLS` decides
                'useTLS' => env('REVERB_SCHEME', 'http') === 'https', // false for Clarion on http
            ],
            'client_options' => [],
        ],

        'log' => [
            'driver' => 'log',
        ],

        'null' => [
            'driver' => 'null',
        ],

    ],

];
