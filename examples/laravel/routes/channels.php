<?php

// routes/channels.php: who may subscribe to which private and presence channel.
//
// Echo asks Laravel's POST /broadcasting/auth (registered by `withBroadcasting()` /
// `->withRouting(channels: ...)` in bootstrap/app.php, in the `web` middleware group by default)
// before it subscribes to a private or presence channel. Laravel runs the matching callback
// below and, when it returns true (private) or an array (presence), answers with an `auth`
// string signed with the app secret; Clarion checks that signature and nothing else. Names
// here are written without the `private-` / `presence-` prefix that goes over the wire.
//
// Assumed schema: users.role is 'client', 'provider' or 'admin'; reservations.client_id and
// reservations.provider_id both reference users.id. If providers are a separate model, compare
// against $user->provider?->id instead.

use App\Models\Reservation;
use App\Models\User;
use Illuminate\Support\Facades\Broadcast;

// private-App.Models.User.{id}: the user's own channel. Notifications sent with the
// `broadcast` channel arrive here (Echo: .notification()), and so does
// ReservationStatusUpdated for the reservation's client.
Broadcast::channel('App.Models.User.{id}', function (User $user, int $id) {
    return $user->id === $id;
});

// private-provider.{providerId}: new bookings for one provider (ReservationCreated).
Broadcast::channel('provider.{providerId}', function (User $user, int $providerId) {
    return $user->role === 'provider' && $user->id === $providerId;
});

// private-reservation.{id}: status changes of one reservation, for its client and its
// provider (ReservationStatusUpdated). Implicit model binding: an unknown id is refused (403).
Broadcast::channel('reservation.{reservation}', function (User $user, Reservation $reservation) {
    return in_array($user->id, [(int) $reservation->client_id, (int) $reservation->provider_id], true);
});

// presence-admins: the admin console (ComplaintCreated, ServiceRequestCreated). For a
// presence channel, return the member's public info (it becomes `user_info`; Echo's
// here/joining/leaving receive it), or nothing to refuse.
Broadcast::channel('admins', function (User $user) {
    if ($user->role === 'admin') {
        return ['id' => $user->id, 'name' => $user->name];
    }

    return null;
});
