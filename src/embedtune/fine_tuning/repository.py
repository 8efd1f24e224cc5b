"""Every query of the fine-tuning feature but its guarded updates (see ``transitions``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    func,
    inspect,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from embedtune.batches.tables import Batch
from embedtune.fine_tuning import counters, journal
from embedtune.fine_tuning.states import (
    EventKind,
    TaskStatus,
)
from embedtune.fine_tuning.tables import Task, TaskEvent, TaskStatusCount
from embedtune.models.tables import EmbeddingModel


def get(session: Session, task_id: str) -> Task | None:
    return session.get(Task, task_id, populate_existing=True)


def get_by_idempotency_key(session: Session, key: str) -> Task | None:
    return session.scalars(select(Task).where(Task.idempotency_key == key)).one_or_none()


_TASK_TABLE = cast(Table, Task.__table__)
#: ``INSERT … ON CONFLICT (idempotency_key) DO NOTHING RETURNING id``, per dialect.
_INSERT_TASK = {
    dialect: insert_of(_TASK_TABLE)
    .on_conflict_do_nothing(index_elements=["idempotency_key"])
    .returning(_TASK_TABLE.c.id)
    for dialect, insert_of in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
}
_REFERENCES = select(
    select(EmbeddingModel.plugin)
    .where(EmbeddingModel.id == bindparam("model_id"))
    .scalar_subquery(),
    select(Batch.num_examples).where(Batch.id == bindparam("batch_id")).scalar_subquery(),
)


def get_references(
    session: Session, model_id: str, batch_id: str | None
) -> tuple[str | None, int | None]:
    """What a new task refers to, in one round trip: the plugin of model ``model_id`` (None
    if no such model), and the number of examples of batch ``batch_id`` (None if no such
    batch).

    A prepared Core query on the session's connection: every creation asks, and two ORM
    loads cost several times as much.
    """
    row = session.connection().execute(_REFERENCES, {"model_id": model_id, "batch_id": batch_id})
    plugin, batch_examples = row.one()
    return plugin, batch_examples


#: (attribute, column) of every column of a task.
_TASK_COLUMNS = tuple(
    (attribute.key, attribute.columns[0].key) for attribute in inspect(Task).column_attrs
)


def insert_new(
    session: Session, task: Task, first_events: Sequence[tuple[EventKind, dict[str, Any]]]
) -> bool:
    """INSERTs ``task`` (the columns set on it); its first events, stamped with its
    ``created_at``, are written at commit (see ``journal``). False, with nothing written,
    when a task with its idempotency key exists (``ON CONFLICT DO NOTHING``).

    Core statements on the session's connection, not a flush: creation is the API's
    busiest write, and a unit-of-work flush costs about twice the INSERTs. So ``task``
    stays out of the session.
    """
    connection = session.connection()
    # Unset columns are left out, as a flush would: NULL, not JSON null, in a JSON column.
    row = {
        column: value
        for attribute, column in _TASK_COLUMNS
        if (value := getattr(task, attribute)) is not None
    }
    inserted = connection.execute(_INSERT_TASK[connection.dialect.name], row).first()
    if inserted is None:
        return False
    for kind, detail in first_events:
        journal.record(session, task.id, kind, detail, task.created_at)
    return True


NEWEST_FIRST = (Task.created_at.desc(), Task.id.desc())


def list_newest_first(
    session: Session, statuses: Sequence[TaskStatus], offset: int, limit: int
) -> list[Task]:
    """One page of tasks, newest first (ties by id, descending).

    With several statuses, each status is read through its own index range and the ranges
    are merged, so the page costs the same at a million tasks as at a thousand.
    """
    if len(statuses) <= 1:
        query = select(Task)
        if statuses:
            query = query.where(Task.status == statuses[0].value)
        return list(session.scalars(query.order_by(*NEWEST_FIRST).offset(offset).limit(limit)))
    per_status = [
        select(Task.id, Task.created_at)
        .where(Task.status == status.value)
        .order_by(*NEWEST_FIRST)
        .limit(offset + limit)
        .subquery()
        .select()
        for status in dict.fromkeys(statuses)
    ]
    merged = union_all(*per_status).subquery()
    page = (
        select(merged.c.id)
        .order_by(merged.c.created_at.desc(), merged.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    ids = list(session.scalars(page))
    tasks = {task.id: task for task in session.scalars(select(Task).where(Task.id.in_(ids)))}
    return [tasks[task_id] for task_id in ids]


def count(session: Session, statuses: Sequence[TaskStatus]) -> int:
    """Exact count from the per-status counters that the database triggers maintain."""
    query = select(func.coalesce(func.sum(TaskStatusCount.count), 0))
    if statuses:
        query = query.where(TaskStatusCount.status.in_([s.value for s in statuses]))
    return int(session.scalar(query) or 0)


def counts_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(TaskStatusCount.status, TaskStatusCount.count))
    return {status: int(n) for status, n in rows}


def list_stale_processing(session: Session, heartbeat_before: datetime) -> list[Task]:
    query = select(Task).where(
        Task.status == TaskStatus.processing.value, Task.heartbeat_at < heartbeat_before
    )
    return list(session.scalars(query))


def list_undispatched_pending(session: Session, dispatched_before: datetime | None) -> list[Task]:
    """Pending tasks whose message may be lost: never dispatched, or long ago."""
    stranded: ColumnElement[bool] = Task.dispatched_at.is_(None)
    if dispatched_before is not None:
        stranded = or_(stranded, Task.dispatched_at < dispatched_before)
    query = select(Task).where(Task.status == TaskStatus.pending.value, stranded)
    return list(session.scalars(query.order_by(Task.created_at)))


def add_event(session: Session, task_id: str, kind: EventKind, **detail: Any) -> None:
    """Records an event; it is written, under an id in commit order, when the session commits.
    Its ``/metrics`` counters move now, in the same transaction."""
    journal.record(session, task_id, kind, detail)
    counters.count_event(session, kind, detail)


def record_dispatch_failure(session: Session, task_id: str, error: str) -> None:
    """The first failed send of a run of them is an event; the next ones count in it
    (``repeats``, ``last_error``), so a broker outage adds one event per task, not one
    per reaper pass."""
    last = _last_event(session, task_id)
    if last is None or last.kind != EventKind.dispatch_failed.value:
        add_event(session, task_id, EventKind.dispatch_failed, error=error)
        return
    repeats = int(last.detail.get("repeats", 0)) + 1
    last.detail = {**last.detail, "repeats": repeats, "last_error": error}


def record_redispatch(session: Session, task_id: str, message_id: str) -> None:
    """A ``dispatched`` event for a re-send, unless it retries a failed send (counted in
    that failure's event if it fails again)."""
    last = _last_event(session, task_id)
    if last is None or last.kind != EventKind.dispatch_failed.value:
        add_event(session, task_id, EventKind.dispatched, message_id=message_id, redispatch=True)


def _last_event(session: Session, task_id: str) -> TaskEvent | None:
    query = select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id.desc())
    return session.scalars(query.limit(1)).first()


def list_events(session: Session, task_id: str) -> list[TaskEvent]:
    query = select(TaskEvent).where(TaskEvent.task_id == task_id).order_by(TaskEvent.id)
    return list(session.scalars(query))
