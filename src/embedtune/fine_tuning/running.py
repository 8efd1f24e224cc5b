"""The rules of a task while a worker holds its message: claim, heartbeat, completion,
failure and retry, hand-back, and the recovery of tasks whose worker stopped beating.

Like ``service``, nothing here commits: the worker's run (``execution``) or the reaper's
pass owns the unit of work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from embedtune.core.db import utcnow
from embedtune.core.queue import Dispatcher
from embedtune.fine_tuning import repository, transitions
from embedtune.fine_tuning.schemas import TaskDeployment
from embedtune.fine_tuning.service import get_task, new_message_id, send_after_commit
from embedtune.fine_tuning.states import EventKind, TaskStatus
from embedtune.fine_tuning.tables import Task

logger = logging.getLogger(__name__)


def claim_task(
    session: Session, task_id: str, message_id: str, worker_id: str, run_id: str
) -> Task | None:
    """pending → processing for the current message; None means drop the message."""
    if not transitions.claim(session, task_id, message_id, worker_id, run_id):
        task = repository.get(session, task_id)
        reason = (
            "unknown task"
            if task is None
            else f"status {task.status}, current message {task.message_id}"
        )
        logger.info("dropping message %s of task_id=%s (%s)", message_id, task_id, reason)
        return None
    return get_task(session, task_id)


def heartbeat(
    session: Session,
    task_id: str,
    message_id: str,
    progress: float | None,
    training_state: dict[str, Any] | None,
    events: Sequence[tuple[EventKind, dict[str, Any]]],
) -> bool:
    """Liveness, progress and the run's progress events, in one transaction; False once
    the task is no longer this message's to run (canceled, recovered)."""
    alive = transitions.heartbeat(session, task_id, message_id, progress, training_state)
    if alive:
        for kind, detail in events:
            repository.add_event(session, task_id, kind, **detail)
    return alive


def is_running(session: Session, task_id: str, message_id: str) -> bool:
    """Whether the task is still processing for ``message_id``."""
    task = repository.get(session, task_id)
    return (
        task is not None and task.status == TaskStatus.processing and task.message_id == message_id
    )


def status_of(session: Session, task_id: str) -> TaskStatus | None:
    """The task's status; None if there is no such task."""
    task = repository.get(session, task_id)
    return TaskStatus(task.status) if task is not None else None


def complete_task(
    session: Session,
    task: Task,
    best_model_id: str,
    best_model_url: str,
    metrics: dict[str, Any],
) -> bool:
    """processing → completed, in the caller's unit of work with the model registration.

    Returns False (and changes nothing) if the task is no longer this worker's to finish:
    the caller then drops its unit of work.
    """
    # A deploy_as_blue task never reads completed with no deployment state.
    deployment = TaskDeployment.pending().model_dump(mode="json") if task.deploy_as_blue else None
    return transitions.complete(
        session, task.id, task.message_id, best_model_id, best_model_url, metrics, deployment
    )


def fail_or_retry(
    session: Session,
    task: Task,
    code: str,
    message: str,
    *,
    retryable: bool,
    max_attempts: int,
    dispatcher: Dispatcher,
    recovered: bool = False,
) -> TaskStatus | None:
    """A training failed: back to pending for another try while attempts are left and the
    failure may pass, else failed with ``error.code``. None if the task was no longer ours.
    ``recovered``: its worker stopped beating (a ``heartbeat_lost`` event comes first)."""
    error = {"code": code, "message": message[:2000]}
    lost = [(EventKind.heartbeat_lost, {"worker_id": task.worker_id})] if recovered else []
    if retryable and task.attempts < max_attempts:
        message_id = new_message_id()
        if not transitions.return_to_pending(
            session,
            task.id,
            task.message_id,
            message_id,
            refund_attempt=False,
            reason="retry",
            error=error,
            preceded_by=lost,
        ):
            return None
        redispatch_one(session, task.id, message_id, dispatcher)
        return TaskStatus.pending
    if not transitions.fail(session, task.id, task.message_id, error, preceded_by=lost):
        return None
    return TaskStatus.failed


def return_task(session: Session, task: Task, reason: str, dispatcher: Dispatcher) -> bool:
    """processing → pending for another worker (shutdown); the attempt is not counted."""
    message_id = new_message_id()
    if not transitions.return_to_pending(
        session, task.id, task.message_id, message_id, refund_attempt=True, reason=reason
    ):
        return False
    redispatch_one(session, task.id, message_id, dispatcher)
    return True


def redispatch_one(session: Session, task_id: str, message_id: str, dispatcher: Dispatcher) -> None:
    if transitions.mark_dispatched(session, task_id, message_id):
        repository.add_event(session, task_id, EventKind.dispatched, message_id=message_id)
        send_after_commit(session, task_id, message_id, dispatcher)


def recover_stale(
    session: Session, heartbeat_timeout_s: float, max_attempts: int, dispatcher: Dispatcher
) -> int:
    """Processing tasks whose worker stopped beating: retried while attempts are left, else
    failed with ``worker_lost``. Safe to run in many processes at once (guarded updates)."""
    before = utcnow() - timedelta(seconds=heartbeat_timeout_s)
    recovered = 0
    for task in repository.list_stale_processing(session, before):
        detail = f"no heartbeat from worker {task.worker_id} since {task.heartbeat_at}"
        outcome = fail_or_retry(
            session,
            task,
            "worker_lost",
            detail,
            retryable=True,
            max_attempts=max_attempts,
            dispatcher=dispatcher,
            recovered=True,
        )
        if outcome is not None:
            recovered += 1
    return recovered
