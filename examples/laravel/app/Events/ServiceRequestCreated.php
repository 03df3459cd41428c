<?php

namespace App\Events;

use App\Models\ServiceRequest;
use Illuminate\Broadcasting\InteractsWithSockets;
use Illuminate\Broadcasting\PresenceChannel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;
use Illuminate\Contracts\Events\ShouldDispatchAfterCommit;
use Illuminate\Foundation\Events\Dispatchable;
use Illuminate\Queue\SerializesModels;

/**
 * Someone asked for a service the marketplace does not list yet: admins review it.
 *
 * Sent as `App\Events\ServiceRequestCreated` on `presence-admins`
 * (Echo.join('admins').listen('ServiceRequestCreated', ...)).
 *
 *     ServiceRequestCreated::dispatch($serviceRequest);
 */
class ServiceRequestCreated implements ShouldBroadcast, ShouldDispatchAfterCommit
{
    use Dispatchable, InteractsWithSockets, SerializesModels;

    public function __construct(public ServiceRequest $serviceRequest)
    {
    }

    /**
     * @return array<int, \Illuminate\Broadcasting\Channel>
     */
    public function broadcastOn(): array
    {
        return [
            new PresenceChannel('admins'),
        ];
    }

    /**
     * @return array<string, mixed>
     */
    public function broadcastWith(): array
    {
        $this->serviceRequest->loadMissing('requester:id,name');

        return [
            'service_request' => [
                'id' => $this->serviceRequest->id,
                'title' => $this->serviceRequest->title,
                'requester' => $this->serviceRequest->requester?->only('id', 'name'),
                'created_at' => $this->serviceRequest->created_at,
            ],
        ];
    }
}
