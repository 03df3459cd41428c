<?php

namespace App\Notifications;

use App\Models\Reservation;
use Illuminate\Bus\Queueable;
use Illuminate\Contracts\Queue\ShouldQueue;
use Illuminate\Notifications\Messages\BroadcastMessage;
use Illuminate\Notifications\Notification;

/**
 * "Your booking was accepted / declined / cancelled": stored for the notification list and
 * pushed to the user's open pages at the same moment. This replaces the 30-second
 * notification polling: the page loads the list once (GET /notifications from the
 * `notifications` table) and then only listens.
 *
 *     $reservation->client->notify(new ReservationStatusChanged($reservation, $previousStatus));
 *
 * - `database` writes the row (php artisan make:notifications-table && php artisan migrate).
 * - `broadcast` sends `Illuminate\Notifications\Events\BroadcastNotificationCreated` on the
 *   notifiable's private channel, `private-App.Models.User.{id}` (see routes/channels.php); in
 *   Vue: Echo.private(`App.Models.User.${id}`).notification(n => ...). Laravel adds `id` (the same
 *   UUID as the database row, so the page can mark it read) and `type` (this class name) to the
 *   payload.
 *
 * Notifications have no toOthers(): the broadcast reaches every open page of the notifiable,
 * which is what a notification is for. For events, leave out the connection that made the
 * change with `broadcast(new ReservationStatusUpdated($reservation, $previous))->toOthers();`
 * (the event needs the InteractsWithSockets trait, and the request must carry Echo's
 * X-Socket-ID header).
 */
class ReservationStatusChanged extends Notification implements ShouldQueue
{
    use Queueable;

    public function __construct(
        public Reservation $reservation,
        public string $previousStatus,
    ) {
        // Queued: wait for the surrounding DB transaction (if any) to commit.
        $this->afterCommit();
    }

    /**
     * @return array<int, string>
     */
    public function via(object $notifiable): array
    {
        return ['database', 'broadcast'];
    }

    /**
     * What the `database` channel stores in notifications.data.
     *
     * @return array<string, mixed>
     */
    public function toArray(object $notifiable): array
    {
        return [
            'reservation_id' => $this->reservation->id,
            'status' => $this->reservation->status,
            'previous_status' => $this->previousStatus,
            'message' => "Reservation #{$this->reservation->id} is now {$this->reservation->status}.",
        ];
    }

    /**
     * What the browser receives (plus `id` and `type`, added by Laravel).
     */
    public function toBroadcast(object $notifiable): BroadcastMessage
    {
        return new BroadcastMessage($this->toArray($notifiable));
    }
}
