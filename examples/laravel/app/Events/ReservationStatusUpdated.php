<?php

namespace App\Events;

use App\Models\Reservation;
use Illuminate\Broadcasting\InteractsWithSockets;
use Illuminate\Broadcasting\PrivateChannel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;
use Illuminate\Contracts\Events\ShouldDispatchAfterCommit;
use Illuminate\Foundation\Events\Dispatchable;
use Illuminate\Queue\SerializesModels;

/**
 * A reservation changed status (accepted, declined, cancelled, completed, …).
 *
 * Sent as `App\Events\ReservationStatusUpdated` on two private channels in one request:
 * `private-reservation.{id}` (a page showing that reservation, for its client or provider) and
 * `private-App.Models.User.{clientId}` (everywhere the client is signed in, e.g. "my bookings").
 *
 * The user who made the change already updated the page from the HTTP response, so skip their
 * own connection:
 *
 *     broadcast(new ReservationStatusUpdated($reservation, $previousStatus))->toOthers();
 *
 * toOthers() sends the X-Socket-ID header of the request (Echo adds it to axios requests) as
 * `socket_id`, and Clarion leaves that one connection out. It needs InteractsWithSockets.
 */
class ReservationStatusUpdated implements ShouldBroadcast, ShouldDispatchAfterCommit
{
    use Dispatchable, InteractsWithSockets, SerializesModels;

    public function __construct(
        public Reservation $reservation,
        public string $previousStatus,
    ) {
    }

    /**
     * @return array<int, \Illuminate\Broadcasting\Channel>
     */
    public function broadcastOn(): array
    {
        return [
            new PrivateChannel('reservation.'.$this->reservation->id),
            new PrivateChannel('App.Models.User.'.$this->reservation->client_id),
        ];
    }

    /**
     * @return array<string, mixed>
     */
    public function broadcastWith(): array
    {
        return [
            'reservation' => [
                'id' => $this->reservation->id,
                'status' => $this->reservation->status,
                'previous_status' => $this->previousStatus,
                'updated_at' => $this->reservation->updated_at,
            ],
        ];
    }
}
