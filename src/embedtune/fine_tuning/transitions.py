"""Every guarded UPDATE of a task row: the status moves of ``states.py``, each recorded
with its event in the same transaction, and the guarded marks (dispatch, heartbeat,
deployment). Zero rows matched means someone else won."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Row,
    case,
    update,
)
from sqlalchemy.orm import Session

from embedtune.core.db import utcnow
from embedtune.fine_tuning.repository import add_event
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
from embedtune.fine_tuning.tables import Task


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
