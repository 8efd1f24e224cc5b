"""Task statuses and the moves allowed between them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TaskStatus(StrEnum):
    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    canceled = "canceled"


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


#: Events after which a task's stream ends.
TERMINAL_EVENTS = frozenset({EventKind.completed, EventKind.failed, EventKind.canceled})


@dataclass(frozen=True)
class Move:
    """One allowed status change: the statuses it leaves, the one it reaches, and the event
    that records it. ``transitions.move`` performs it as one guarded UPDATE and records its
    event in the same transaction."""

    sources: tuple[TaskStatus, ...]
    target: TaskStatus
    event: EventKind


#: Every allowed move (as Prefect's orchestration rules declare FROM/TO).
CLAIM = Move((TaskStatus.pending,), TaskStatus.processing, EventKind.claimed)
COMPLETE = Move((TaskStatus.processing,), TaskStatus.completed, EventKind.completed)
FAIL = Move((TaskStatus.processing,), TaskStatus.failed, EventKind.failed)
#: Back to the queue for another worker: a retry, a recovery or a worker's shutdown.
RETURN = Move((TaskStatus.processing,), TaskStatus.pending, EventKind.returned)
CANCEL = Move((TaskStatus.pending, TaskStatus.processing), TaskStatus.canceled, EventKind.canceled)
RESTART = Move(
    (TaskStatus.failed, TaskStatus.canceled, TaskStatus.pending),
    TaskStatus.pending,
    EventKind.restarted,
)
MOVES = (CLAIM, COMPLETE, FAIL, RETURN, CANCEL, RESTART)
#: The task's status right after an event of each kind (kinds that change no status are
#: absent); a stream reader learns the status from the events alone.
STATUS_AFTER = {EventKind.created: TaskStatus.pending} | {m.event: m.target for m in MOVES}
