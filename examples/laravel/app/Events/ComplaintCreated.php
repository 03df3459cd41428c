<?php

namespace App\Events;

use App\Models\Complaint;
use Illuminate\Broadcasting\InteractsWithSockets;
use Illuminate\Broadcasting\PresenceChannel;
use Illuminate\Contracts\Broadcasting\ShouldBroadcast;
use Illuminate\Contracts\Events\ShouldDispatchAfterCommit;
use Illuminate\Foundation\Events\Dispatchable;
use Illuminate\Queue\SerializesModels;

/**
 * A client or provider filed a complaint: every admin on the console sees it at once.
 *
 * Sent as `App\Events\ComplaintCreated` on `presence-admins`, the channel the admin console
 * joins (Echo.join('admins')), which also shows which admins are online. Only users that
 * routes/channels.php accepts for `admins` can join, so the payload reaches admins only.
 *
 *     ComplaintCreated::dispatch($complaint);
 */
class ComplaintCreated implements ShouldBroadcast, ShouldDispatchAfterCommit
{
    use Dispatchable, InteractsWithSockets, SerializesModels;

    public function __construct(public Complaint $complaint)
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
        $this->complaint->loadMissing('author:id,name');

        return [
            'complaint' => [
                'id' => $this->complaint->id,
                'subject' => $this->complaint->subject,
                'reservation_id' => $this->complaint->reservation_id,
                'author' => $this->complaint->author?->only('id', 'name'),
                'created_at' => $this->complaint->created_at,
            ],
        ];
    }
}
