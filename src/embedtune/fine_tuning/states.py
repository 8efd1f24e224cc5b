"""Task statuses and the moves allowed between them."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    canceled = "canceled"


#: Every allowed move, keyed by target: each is one guarded UPDATE in the repository.
CLAIMABLE = (TaskStatus.pending,)
CANCELABLE = (TaskStatus.pending, TaskStatus.processing)
RESTARTABLE = (TaskStatus.failed, TaskStatus.canceled, TaskStatus.pending)
FINISHED = (TaskStatus.completed, TaskStatus.failed, TaskStatus.canceled)


class EventKind(StrEnum):
    created = "created"
    dispatched = "dispatched"
    dispatch_failed = "dispatch_failed"
    claimed = "claimed"
    heartbeat_lost = "heartbeat_lost"
    returned = "returned"
    canceled = "canceled"
    restarted = "restarted"
    failed = "failed"
    completed = "completed"
    #: A deploy_as_blue decision; the detail is the task's ``deployment`` object.
    deployment = "deployment"
    #: A training's position (step, total_steps, epoch, loss, …), at a bounded rate.
    progress = "progress"
    #: Held-out evaluation during training; the detail holds the metrics.
    evaluated = "evaluated"
    checkpoint_saved = "checkpoint_saved"


#: The task's status right after an event of each kind (kinds that change no status are
#: absent); a stream reader learns the status from the events alone.
STATUS_AFTER = {
    EventKind.created: TaskStatus.pending,
    EventKind.restarted: TaskStatus.pending,
    EventKind.returned: TaskStatus.pending,
    EventKind.claimed: TaskStatus.processing,
    EventKind.completed: TaskStatus.completed,
    EventKind.failed: TaskStatus.failed,
    EventKind.canceled: TaskStatus.canceled,
}
#: Events after which a task's stream ends.
TERMINAL_EVENTS = frozenset({EventKind.completed, EventKind.failed, EventKind.canceled})
