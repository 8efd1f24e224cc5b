"""The task event journal: every event is stored under an id that grows in commit order.

A stream reader asks for the events after the last id it sent. That is only exact if no
event can commit later under a smaller id, so events are written at the end of their
transaction: on PostgreSQL under a transaction-level advisory lock (the event INSERT and the
COMMIT of two transactions never interleave), on SQLite under its single write lock. The
lock is taken after everything else the transaction writes, so it waits for no row lock
and cannot deadlock.

Once they commit, :data:`COMMITTED` signals them (task id and kind of each), so the API
processes' streams read them at once rather than at their next poll.

Webhook deliveries for the events that have a webhook type are stored in the same
transaction (see :mod:`embedtune.webhooks`): a state change and its notification commit
together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, event, insert, text
from sqlalchemy.orm import Session

from embedtune.core.db import utcnow
from embedtune.core.signals import Signal
from embedtune.fine_tuning.states import STATUS_AFTER, EventKind
from embedtune.fine_tuning.tables import TaskEvent
from embedtune.webhooks import service as webhooks

_PENDING = "embedtune_pending_task_events"
_WRITTEN = "embedtune_written_task_events"
#: Any constant shared by every process writing events to one database.
_EVENT_LOCK_KEY = 0x656D6274756E65
_INSERT_EVENTS = insert(cast(Table, TaskEvent.__table__))
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")

#: Sent after each commit that wrote events: ``[{"task_id": …, "kind": …}, …]``.
COMMITTED = Signal("task-events")

#: The webhook type of each event kind that has one.
WEBHOOK_TYPES = {
    EventKind.claimed: "task.started",
    EventKind.completed: "task.completed",
    EventKind.failed: "task.failed",
    EventKind.canceled: "task.canceled",
}


def record(
    session: Session,
    task_id: str,
    kind: EventKind,
    detail: dict[str, Any],
    created_at: datetime | None = None,
) -> None:
    """Adds an event to the session's transaction; it is written when that commits."""
    session.info.setdefault(_PENDING, []).append(
        {
            "task_id": task_id,
            "kind": kind.value,
            "detail": detail,
            "created_at": created_at or utcnow(),
        }
    )


def _webhook_data(row: dict[str, Any]) -> dict[str, Any]:
    status = STATUS_AFTER.get(EventKind(row["kind"]))
    return {
        "task_id": row["task_id"],
        "status": status.value if status else None,
        **row["detail"],
    }


def _write_pending(session: Session) -> None:
    rows: list[dict[str, Any]] | None = session.info.pop(_PENDING, None)
    if not rows:
        return
    session.flush()  # the rest of the transaction's writes first: then the lock is last
    for row in rows:
        webhook_type = WEBHOOK_TYPES.get(EventKind(row["kind"]))
        if webhook_type is not None:
            webhooks.enqueue(session, webhook_type, _webhook_data(row))
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK, {"key": _EVENT_LOCK_KEY})
    connection.execute(_INSERT_EVENTS, rows)
    session.info.setdefault(_WRITTEN, []).extend(
        {"task_id": row["task_id"], "kind": row["kind"]} for row in rows
    )


def _signal_written(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: the events are visible once the transaction commits
    written = session.info.pop(_WRITTEN, None)
    if written:
        COMMITTED.send(written)


def _forget_pending(session: Session, *_: object) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_WRITTEN, None)


_listeners: tuple[Callable[..., None], ...] = (
    event.listens_for(Session, "before_commit")(_write_pending),
    event.listens_for(Session, "after_commit")(_signal_written),
    event.listens_for(Session, "after_soft_rollback")(_forget_pending),
)
