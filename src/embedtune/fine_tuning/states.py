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
