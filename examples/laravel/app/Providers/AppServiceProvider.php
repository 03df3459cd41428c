<?php

// app/Providers/AppServiceProvider.php (its boot() method): user sign-in, which gives the admin
// console the providers' online status through Clarion's watchlist events.
//
// pusher.signin() (ProviderBookings.vue and AdminConsole.vue call it) POSTs socket_id to
// /broadcasting/user-auth. Broadcast::userRoutes() registers that route, in the `web`
// middleware group so the session says who asks; Laravel answers with the user_data the
// callback below returns, signed with the app secret. Clarion needs `id` as a non-empty string:
// cast Laravel's integer ids. `watchlist` may hold them as integers, as pluck() returns them.
//
// An admin's user_data carries the provider ids as its watchlist: right after the sign-in Clarion
// tells the admin's connection which of them are signed in anywhere (online) and which are not
// (offline), then each change, cluster-wide. That needs enable_watchlist_events in Clarion's
// app (examples/laravel/clarion.toml). A provider counts as online while at least one of its
// tabs has signed in (its dashboard does). Clarion keeps the first 100 ids of a watchlist: a
// marketplace with more providers watches a subset (say, the providers with open complaints).

namespace App\Providers;

use App\Models\User;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Broadcast;
use Illuminate\Support\ServiceProvider;

class AppServiceProvider extends ServiceProvider
{
    public function boot(): void
    {
        Broadcast::userRoutes();

        Broadcast::resolveAuthenticatedUserUsing(function (Request $request) {
            $user = $request->user();
            if ($user === null) {
                return null; // 403: pusher-js emits pusher:signin_error on pusher.user
            }

            $userData = ['id' => (string) $user->id, 'name' => $user->name];
            if ($user->role === 'admin') {
                $userData['watchlist'] = User::where('role', 'provider')
                    ->orderBy('id')
                    ->limit(100)
                    ->pluck('id')
                    ->all();
            }

            return $userData;
        });
    }
}
