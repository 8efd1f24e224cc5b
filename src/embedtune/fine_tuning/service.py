"""The rules of fine-tuning tasks: creation exactly once, and every state transition.

No function here commits: each works in its caller's unit of work (a route's, a worker's
run, a reaper's pass; see ``db.transaction``), and what it asks of the queue is sent after
that commits (``db.after_commit``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from embedtune.batches import service as batches
from embedtune.core.db import after_commit, unit_of_work, utcnow
from embedtune.core.errors import IdempotencyKeyReused, InvalidState, NotFound, Unprocessable
from embedtune.core.ids import new_id
from embedtune.core.queue import Dispatcher
from embedtune.feedback import service as feedback
from embedtune.fine_tuning import repository, transitions
from embedtune.fine_tuning.ports import Deployer
from embedtune.fine_tuning.schemas import TaskCreate
from embedtune.fine_tuning.states import EventKind, TaskStatus
from embedtune.fine_tuning.tables import Task, TaskEvent
from embedtune.fine_tuning.task_options import check_task_options
from embedtune.models import service as models

logger = logging.getLogger(__name__)

MAX_METADATA_BYTES = 64 * 1024


def new_message_id() -> str:
    return new_id("msg-")


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _fingerprint(request: TaskCreate, metadata: dict[str, Any]) -> str:
    normalized = {
        "embedding_model_id": request.embedding_model_id,
        "batch_id": request.batch_id,
        "metadata": metadata,
        "deploy_as_blue": request.deploy_as_blue,
        "wait_on_conflict": request.wait_on_conflict,
    }
    return hashlib.sha256(_compact_json(normalized).encode()).hexdigest()


def _idempotency_key(request: TaskCreate, header_key: str | None) -> str | None:
    if header_key is not None and not 1 <= len(header_key) <= 255:
        raise Unprocessable("Idempotency-Key must be 1 to 255 characters", code="validation_error")
    if request.idempotency_key not in (None, header_key) and header_key is not None:
        raise Unprocessable(
            "the Idempotency-Key header and the body's idempotency_key differ",
            code="idempotency_key_mismatch",
        )
    return request.idempotency_key if request.idempotency_key is not None else header_key


def _replay(task: Task, fingerprint: str) -> Task:
    if task.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"idempotency key {task.idempotency_key!r} was already used for a different request"
        )
    return task


def create_task(
    session: Session, request: TaskCreate, header_key: str | None, dispatcher: Dispatcher
) -> tuple[Task, bool]:
    """Creates a task, or returns the one created earlier with the same idempotency key.

    Returns ``(task, created)``. Raises Unprocessable (``idempotency_key_mismatch``,
    ``idempotency_key_reused``, ``metadata_too_large``, ``plugin_unavailable``,
    ``no_feedback``, ``invalid_training_options``, ``invalid_deploy_options``,
    ``batch_too_small``) and NotFound (``model_not_found``, ``batch_not_found``). Without a
    ``batch_id``, a plugin that needs one trains on the feedback released here (release id:
    the idempotency key, else the task id).
    """
    key = _idempotency_key(request, header_key)
    metadata = request.metadata or {}
    if len(_compact_json(metadata).encode()) > MAX_METADATA_BYTES:
        raise Unprocessable("metadata exceeds 64 KiB as compact JSON", code="metadata_too_large")
    fingerprint = _fingerprint(request, metadata)
    if key is not None:
        existing = repository.get_by_idempotency_key(session, key)
        if existing is not None:
            return _replay(existing, fingerprint), False

    plugin_name, batch_examples = repository.get_references(
        session, request.embedding_model_id, request.batch_id
    )
    if plugin_name is None:
        raise models.model_not_found(request.embedding_model_id)
    if request.batch_id is not None and batch_examples is None:
        raise batches.batch_not_found(request.batch_id)
    plugin = models.require_plugin(plugin_name, for_training=True)
    check_task_options(session, plugin, metadata, batch_examples)

    task_id, batch_id = new_id("ft-"), request.batch_id
    if plugin.requires_batch and batch_id is None:
        batch_id = feedback.release(session, key or task_id)[0].id
    now = utcnow()
    task = Task(
        id=task_id,
        embedding_model_id=request.embedding_model_id,
        batch_id=batch_id,
        status=TaskStatus.pending.value,
        metadata_=metadata,
        idempotency_key=key,
        request_fingerprint=fingerprint,
        deploy_as_blue=request.deploy_as_blue,
        wait_on_conflict=request.wait_on_conflict,
        # Set, not left to the column defaults: the task is answered as built, not reloaded.
        progress=0.0,
        attempts=0,
        abort_requested=False,
        message_id=new_message_id(),
        dispatched_at=now,
        created_at=now,
        updated_at=now,
    )
    first_events = [
        (EventKind.created, {}),
        (EventKind.dispatched, {"message_id": task.message_id}),
    ]
    if not repository.insert_new(session, task, first_events):
        # A create with the same key committed since the lookup above.
        existing = repository.get_by_idempotency_key(session, key) if key is not None else None
        assert existing is not None  # only the idempotency key's conflict is skipped
        return _replay(existing, fingerprint), False
    send_after_commit(session, task.id, task.message_id, dispatcher)
    return task, True


@dataclass
class Send:
    """The send of a task's message, once the unit of work that asked for it commits.

    ``sent`` is None until then, False if the broker refused it: the task then stays stored
    with no dispatch time (recorded in a unit of its own), and the reaper sends it again.
    """

    task_id: str
    message_id: str
    dispatcher: Dispatcher
    sent: bool | None = None

    def __call__(self, session: Session) -> None:
        try:
            self.dispatcher.dispatch(self.task_id, self.message_id)
        except Exception as exc:
            logger.warning("dispatch of task_id=%s failed, will retry: %s", self.task_id, exc)
            self.sent = False
            if transitions.clear_dispatched(session, self.task_id, self.message_id):
                repository.record_dispatch_failure(session, self.task_id, str(exc))
            return
        self.sent = True


def send_after_commit(
    session: Session, task_id: str, message_id: str, dispatcher: Dispatcher
) -> Send:
    """Sends the task's message after the caller's unit of work commits."""
    send = Send(task_id, message_id, dispatcher)
    after_commit(session, send)
    return send


def _abort_after_commit(
    session: Session, task_id: str, run_id: str, dispatcher: Dispatcher
) -> None:
    def abort(_: Session) -> None:
        try:
            dispatcher.abort(run_id)
        except Exception as exc:
            # The worker also polls the row, so a lost signal only delays the stop.
            logger.warning("abort signal for task_id=%s failed: %s", task_id, exc)

    after_commit(session, abort)


@unit_of_work
def get_task(session: Session, task_id: str) -> Task:
    """Raises NotFound (``task_not_found``)."""
    task = repository.get(session, task_id)
    if task is None:
        raise NotFound(f"task {task_id!r} not found", code="task_not_found")
    return task


@unit_of_work
def list_tasks(
    session: Session, statuses: Sequence[TaskStatus], offset: int, limit: int
) -> tuple[list[Task], int]:
    return (
        repository.list_newest_first(session, statuses, offset, limit),
        repository.count(session, statuses),
    )


@unit_of_work
def list_events(session: Session, task_id: str) -> list[TaskEvent]:
    get_task(session, task_id)
    return repository.list_events(session, task_id)


def cancel_task(session: Session, task_id: str, dispatcher: Dispatcher, deployer: Deployer) -> Task:
    """pending/processing → canceled; canceled stays; a completed task whose deployment
    waits (wait_on_conflict) stays completed and its wait ends. Raises NotFound, InvalidState."""
    task = get_task(session, task_id)
    if task.status == TaskStatus.canceled:
        return task
    if task.status == TaskStatus.completed and deployer.end_wait(session, task_id):
        return get_task(session, task_id)
    canceled = transitions.cancel(session, task_id)
    if canceled is None:
        task = get_task(session, task_id)
        if task.status == TaskStatus.canceled:
            return task
        raise InvalidState(f"task {task_id!r} is {task.status} and cannot be canceled")
    _, run_id = canceled
    if run_id is not None:
        _abort_after_commit(session, task_id, run_id, dispatcher)
    return get_task(session, task_id)


def restart_task(session: Session, task_id: str, dispatcher: Dispatcher) -> Task:
    """failed/canceled/pending → pending with a new message. Raises NotFound, InvalidState."""
    get_task(session, task_id)
    message_id = new_message_id()
    if not transitions.restart(session, task_id, message_id):
        task = get_task(session, task_id)
        raise InvalidState(f"task {task_id!r} is {task.status} and cannot be restarted")
    # The answer is the task as restarted: a worker may claim it as soon as it is sent.
    restarted = get_task(session, task_id)
    send_after_commit(session, task_id, message_id, dispatcher)
    return restarted


def stranded(session: Session, dispatch_timeout_s: float | None) -> list[Task]:
    """Pending tasks that may have lost their message: never dispatched, or (with
    ``dispatch_timeout_s``) dispatched longer ago than that. The embedded broker, whose
    queue does not survive a restart, passes 0 at start to send all of them again."""
    before = (
        None if dispatch_timeout_s is None else utcnow() - timedelta(seconds=dispatch_timeout_s)
    )
    return repository.list_undispatched_pending(session, before)


def redispatch(session: Session, task: Task, dispatcher: Dispatcher) -> Send | None:
    """Sends a stranded task's message again (after the commit); None if it is no longer
    stranded. The message id is kept: whichever copy arrives first claims, the others are
    dropped."""
    if not transitions.mark_dispatched(session, task.id, task.message_id):
        return None
    repository.record_redispatch(session, task.id, task.message_id)
    return send_after_commit(session, task.id, task.message_id, dispatcher)
