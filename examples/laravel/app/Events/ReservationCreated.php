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
 * A client booked a service: the provider's open dashboards show it at once.
 *
 * Sent as event `App\Events\ReservationCreated` (no broadcastAs(), so the class name) on
 * `private-provider.{providerId}`; in Vue:
 * Echo.private(`provider.${providerId}`).listen('ReservationCreated', e => e.reservation).
 *
 * Dispatch it where the reservation is stored:
 *
 *     ReservationCreated::dispatch($reservation);
 *
 * ShouldDispatchAfterCommit: inside DB::transaction() the event waits for the commit, so the
 * provider never sees a booking that was rolled back (or that a follow-up request cannot read
 * yet). ShouldBroadcast sends it from the queue worker; use ShouldBroadcastNow to send it
 * during the request instead.
 */
class ReservationCreated implements ShouldBroadcast, ShouldDispatchAfterCommit
{
    use Dispatchable, InteractsWithSockets, SerializesModels;

    public function __construct(public Reservation $reservation)
    {
    }

    /**
     * @return array<int, \Illuminate\Broadcasting\Channel>
     */
    public function broadcastOn(): array
    {
        return [
            new PrivateChannel('provider.'.$this->reservation->provider_id),
        ];
    }

    /**
     * The payload: only what the dashboard shows (without broadcastWith(), every public
     * property would be serialized, i.e. the whole model with all its attributes).
     *
     * @return array<string, mixed>
     */
    public function broadcastWith(): array
    {
        $this->reservation->loadMissing('client:id,name', 'service:id,title');

        return [
            'reservation' => [
                'id' => $this->reservation->id,
                'status' => $this->reservation->status,
                'starts_at' => $this->reservation->starts_at,
                'service' => $this->reservation->service?->only('id', 'title'),
                'client' => $this->reservation->client?->only('id', 'name'),
                'created_at' => $this->reservation->created_at,
            ],
        ];
    }
}
