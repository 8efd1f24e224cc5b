"""Every query of the fine-tuning feature. Each status change is one guarded UPDATE."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Row,
    Table,
    bindparam,
    case,
    func,
    inspect,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from embedtune.batches.tables import Batch
from embedtune.core.db import utcnow
from embedtune.fine_tuning import counters, journal
from embedtune.fine_tuning.states import (
    CANCEL,
    CLAIM,
    COMPLETE,
    FAIL,
    RESTART,
    RETURN,
    EventKind,
    Move,
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


def _guarded_update(session: Session, task_id: str, *guards: Any, **values: Any) -> bool:
    """``UPDATE … WHERE id = :id AND <guards>``; False when no row matched."""
    values.setdefault("updated_at", utcnow())
    statement = (
        update(Task)
        .where(Task.id == task_id, *guards)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount == 1


def mark_dispatched(session: Session, task_id: str, message_id: str) -> bool:
    return _guarded_update(
        session,
        task_id,
        Task.status == TaskStatus.pending.value,
        Task.message_id == message_id,
        dispatched_at=utcnow(),
    )


def clear_dispatched(session: Session, task_id: str, message_id: str) -> bool:
    """The send failed: no dispatch time, so the reaper sends it at its next pass."""
    return _guarded_update(
        session,
        task_id,
        Task.status == TaskStatus.pending.value,
        Task.message_id == message_id,
        dispatched_at=None,
    )


def move(
    session: Session,
    task_id: str,
    transition: Move,
    *guards: ColumnElement[bool],
    detail: Callable[[Row[Any]], dict[str, Any]] | dict[str, Any],
    returning: Sequence[Any] = (),
    preceded_by: Sequence[tuple[EventKind, dict[str, Any]]] = (),
    **values: Any,
) -> Row[Any] | None:
    """Performs ``transition`` in one statement, ``UPDATE task SET status=<target>, … WHERE
    id = :id AND status IN (<sources>) AND <guards> RETURNING …``, and records its event
    (and its ``/metrics`` counters) in the same transaction. ``detail`` is the event's
    detail, or makes it from the returned row; ``preceded_by`` are events that explain the
    move, recorded just before it (a lost heartbeat). None when no row matched: someone else
    won, and nothing is recorded.
    """
    statement = (
        update(Task)
        .where(
            Task.id == task_id,
            Task.status.in_([status.value for status in transition.sources]),
            *guards,
        )
        .values(status=transition.target.value, updated_at=utcnow(), **values)
        .returning(Task.id, *returning)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(statement).one_or_none()
    if row is None:
        return None
    for kind, earlier in preceded_by:
        add_event(session, task_id, kind, **earlier)
    add_event(session, task_id, transition.event, **(detail(row) if callable(detail) else detail))
    return row


def claim(session: Session, task_id: str, message_id: str, worker_id: str, run_id: str) -> bool:
    """pending → processing, only for the task's current message."""
    now = utcnow()

    def claimed(row: Row[Any]) -> dict[str, Any]:
        detail: dict[str, Any] = {"worker_id": worker_id, "attempt": row.attempts}
        if row.dispatched_at is not None:
            # Feeds the dispatch latency metric: how long the message waited for a worker.
            detail["queue_latency_s"] = (now - row.dispatched_at).total_seconds()
        return detail

    return (
        move(
            session,
            task_id,
            CLAIM,
            Task.message_id == message_id,
            detail=claimed,
            returning=(Task.attempts, Task.dispatched_at),
            attempts=Task.attempts + 1,
            worker_id=worker_id,
            run_id=run_id,
            started_at=now,
            heartbeat_at=now,
            abort_requested=False,
        )
        is not None
    )


def heartbeat(
    session: Session,
    task_id: str,
    message_id: str,
    progress: float | None,
    training_state: dict[str, Any] | None,
) -> bool:
    """Records liveness (and progress); False once the task is no longer ours to run."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = progress
    if training_state is not None:
        values["training_state"] = training_state
    return _guarded_update(
        session,
        task_id,
        Task.status == TaskStatus.processing.value,
        Task.message_id == message_id,
        **values,
    )


def complete(
    session: Session,
    task_id: str,
    message_id: str,
    best_model_id: str,
    best_model_url: str,
    metrics: dict[str, Any],
    deployment: dict[str, Any] | None = None,
) -> bool:
    """processing → completed; ``deployment`` is the deploy_as_blue state it starts with."""
    now = utcnow()
    values: dict[str, Any] = {} if deployment is None else {"deployment": deployment}
    return (
        move(
            session,
            task_id,
            COMPLETE,
            Task.message_id == message_id,
            detail={"best_model_id": best_model_id},
            **values,
            best_model_id=best_model_id,
            best_model_url=best_model_url,
            metrics=metrics,
            progress=1.0,
            finished_at=now,
            heartbeat_at=now,
        )
        is not None
    )


def fail(
    session: Session,
    task_id: str,
    message_id: str,
    error: dict[str, str],
    preceded_by: Sequence[tuple[EventKind, dict[str, Any]]] = (),
) -> bool:
    return (
        move(
            session,
            task_id,
            FAIL,
            Task.message_id == message_id,
            detail=error,
            preceded_by=preceded_by,
            error=error,
            finished_at=utcnow(),
        )
        is not None
    )


def return_to_pending(
    session: Session,
    task_id: str,
    message_id: str,
    new_message_id: str,
    *,
    refund_attempt: bool,
    reason: str,
    error: dict[str, str] | None = None,
    preceded_by: Sequence[tuple[EventKind, dict[str, Any]]] = (),
) -> bool:
    """processing → pending for another worker (shutdown or recovery), with a new message."""
    values: dict[str, Any] = {}
    if refund_attempt:
        values["attempts"] = Task.attempts - 1
    detail: dict[str, Any] = {"reason": reason}
    if error is not None:
        detail["error"] = error
    return (
        move(
            session,
            task_id,
            RETURN,
            Task.message_id == message_id,
            detail={**detail, "message_id": new_message_id},
            preceded_by=preceded_by,
            message_id=new_message_id,
            dispatched_at=None,
            worker_id=None,
            heartbeat_at=None,
            **values,
        )
        is not None
    )


def cancel(session: Session, task_id: str) -> tuple[TaskStatus, str | None] | None:
    """pending/processing → canceled in one statement; returns the status it had and the
    run id to abort (None unless it was processing), or None if it was neither.

    The SET expressions read the row as the update found it, so ``abort_requested`` says
    whether it was processing at that instant, with nothing read before the update.
    """
    was_processing = Task.status == TaskStatus.processing.value

    def previous(row: Row[Any]) -> TaskStatus:
        return TaskStatus.processing if row.abort_requested else TaskStatus.pending

    row = move(
        session,
        task_id,
        CANCEL,
        detail=lambda row: {"previous_status": previous(row).value},
        returning=(Task.abort_requested, Task.run_id),
        abort_requested=case((was_processing, True), else_=False),
        finished_at=utcnow(),
    )
    if row is None:
        return None
    if row.abort_requested:
        return TaskStatus.processing, row.run_id
    return TaskStatus.pending, None


def restart(session: Session, task_id: str, new_message_id: str) -> bool:
    """failed/canceled/pending → pending with a new message, sent at once (``dispatched``)."""
    restarted = move(
        session,
        task_id,
        RESTART,
        detail={"message_id": new_message_id},
        message_id=new_message_id,
        best_model_id=None,
        best_model_url=None,
        metrics=None,
        error=None,
        progress=0.0,
        training_state=None,
        attempts=0,
        abort_requested=False,
        worker_id=None,
        run_id=None,
        dispatched_at=utcnow(),
        heartbeat_at=None,
        started_at=None,
        finished_at=None,
    )
    if restarted is None:
        return False
    add_event(session, task_id, EventKind.dispatched, message_id=new_message_id)
    return True


def set_deployment(session: Session, task_id: str, deployment: dict[str, Any]) -> bool:
    """Records what deploy_as_blue did with a completed task, with its ``deployment``
    event; False if the task is not completed."""
    if not _guarded_update(
        session, task_id, Task.status == TaskStatus.completed.value, deployment=deployment
    ):
        return False
    add_event(session, task_id, EventKind.deployment, **deployment)
    return True


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
