"""``deploy_as_blue``: after a task completes, :func:`deploy_completed_task` decides whether its
model becomes blue. A conflict is a deployment in progress or a blue that changed since the
task was created. With ``wait_on_conflict`` the decision is parked in ``deployment_wait``
(no thread, no model held) and :func:`decide_waiting` takes it up in a later pass of the API
process's loop: as soon as no deployment is in progress, the model competes with the blue of
that moment; at ``EMBEDTUNE_DEPLOY_WAIT_TIMEOUT`` with a deployment still in progress the
outcome is ``conflict``. Canceling the (completed) task ends a wait: ``canceled``.

:class:`TaskDeployer` is fine-tuning's ``Deployer`` port (wired by ``app.py`` and
``worker.py``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from embedtune.core.config import Settings
from embedtune.core.db import new_session, separate_unit, transaction, utcnow
from embedtune.core.errors import InvalidState
from embedtune.core.ids import new_id
from embedtune.deployments import repository
from embedtune.deployments.gate import WaitCanceled, decide_locked, finish, record_outcome
from embedtune.deployments.inference import Inference
from embedtune.deployments.switches import DeploymentInProgress, deployment_lock
from embedtune.fine_tuning import repository as tasks
from embedtune.fine_tuning.schemas import DeploymentStatus, TaskDeployment
from embedtune.fine_tuning.tables import Task

logger = logging.getLogger(__name__)


def _conflict(
    session: Session, task: Task, settings: Settings, blue_id: str, reason: str, claim: str | None
) -> TaskDeployment | None:
    """Waits (``wait_on_conflict``, first time) or ends in ``conflict``, in the caller's
    unit of work; the outcome recorded, None when none is (the wait goes on, or was
    canceled meanwhile)."""
    if claim is None and task.wait_on_conflict:
        assert task.best_model_id is not None
        wait_until = utcnow() + timedelta(seconds=settings.deploy_wait_timeout)
        repository.insert_wait(session, task.id, task.best_model_id, wait_until)
        outcome = TaskDeployment(
            status=DeploymentStatus.waiting,
            blue_before=blue_id,
            blue_after=blue_id,
            detail=f"{reason}; waiting for its turn until {wait_until.isoformat()}",
            wait_until=wait_until.isoformat(),
        )
    elif claim is not None:
        wait = repository.get_wait(session, task.id)
        if wait is not None and wait.wait_until > utcnow():
            repository.unclaim_wait(session, task.id, claim)
            return None
        if not repository.delete_claimed_wait(session, task.id, claim):
            return None
        outcome = TaskDeployment(
            status=DeploymentStatus.conflict,
            blue_before=blue_id,
            blue_after=blue_id,
            detail=f"{reason} after waiting {settings.deploy_wait_timeout:g} s; not deployed",
        )
    else:
        outcome = TaskDeployment(
            status=DeploymentStatus.conflict,
            blue_before=blue_id,
            blue_after=blue_id,
            detail=f"{reason}; not deployed (the model stays registered)",
        )
    record_outcome(session, task.id, outcome)
    return outcome


def _end_in_conflict(
    session: Session, task: Task, settings: Settings, blue_id: str, reason: str, claim: str | None
) -> None:
    """:func:`_conflict` in a unit of work of its own."""
    with separate_unit(session):
        outcome = _conflict(session, task, settings, blue_id, reason, claim)
    if outcome is not None:
        logger.info("deployment of task_id=%s: %s (%s)", task.id, outcome.status, reason)


def _decide(
    session: Session,
    task: Task,
    settings: Settings,
    inference: Inference | None,
    claim: str | None,
) -> None:
    """One deployment decision for a completed task (see the module docstring), in units
    of work of its own: the caller's reads of ``session`` end with the first of them.

    ``claim`` is the token of a waiting deployment taken up by :func:`decide_waiting`.
    """
    slot = repository.get_blue(session)
    if slot is None:
        raise ValueError("no model is blue yet; make one live with PUT /deployments/blue")
    if claim is None and slot.since > task.created_at:
        reason = f"blue changed to {slot.model_id!r} since the task was created"
        _end_in_conflict(session, task, settings, slot.model_id, reason, claim)
        return
    try:
        with deployment_lock(session, settings) as token:
            decide_locked(session, task, inference, claim, token)
    except DeploymentInProgress:
        reason = "another deployment is in progress"
        _end_in_conflict(session, task, settings, slot.model_id, reason, claim)


def _fail(task_id: str, exc: Exception, claim: str | None) -> None:
    """Records ``failed``; a failure to record is logged, never raised."""
    try:
        with new_session(writer=True) as session, transaction(session):
            slot = repository.get_blue(session)
            blue_id = slot.model_id if slot is not None else None
            outcome = TaskDeployment(
                status=DeploymentStatus.failed,
                blue_before=blue_id,
                blue_after=blue_id,
                detail=f"{type(exc).__name__}: {exc}",
            )
            finish(session, task_id, outcome, claim)
    except WaitCanceled:
        logger.info("deployment of task_id=%s was canceled while being decided", task_id)
    except Exception:
        logger.exception("recording the failed deployment of task_id=%s failed", task_id)


def deploy_completed_task(
    task_id: str, settings: Settings, inference: Inference | None = None
) -> None:
    """The ``deploy_as_blue`` decision for a task that just completed. Never raises: a
    failure is recorded as ``deployment.status: failed`` and the task stays completed."""
    _run_decision(task_id, settings, inference, claim=None)


def _run_decision(
    task_id: str, settings: Settings, inference: Inference | None, claim: str | None
) -> None:
    try:
        with new_session(writer=True) as session:
            task = tasks.get(session, task_id)
            if task is None or not task.deploy_as_blue or task.best_model_id is None:
                return
            _decide(session, task, settings, inference, claim)
    except Exception as exc:
        logger.exception("deployment of task_id=%s failed", task_id)
        _fail(task_id, exc, claim)


def decide_waiting(settings: Settings, inference: Inference | None) -> int:
    """Takes up the waiting deployments whose turn came (no deployment in progress, or
    their time is up). Safe in many processes at once. Returns how many were taken up."""
    with new_session() as session:
        waits = repository.list_claimable_waits(session)
        lock_free = repository.lock_is_free(session)
    taken = 0
    for wait in waits:
        if not lock_free and wait.wait_until > utcnow():
            continue
        token = new_id("claim-")
        lease_until = utcnow() + timedelta(seconds=settings.deploy_lock_timeout)
        # The claim is a unit of its own, seen by the other processes while this one decides.
        with new_session(writer=True) as session, transaction(session):
            claimed = repository.claim_wait(session, wait.task_id, token, lease_until)
        if claimed:
            taken += 1
            _run_decision(wait.task_id, settings, inference, claim=token)
    return taken


def cancel_wait(session: Session, task_id: str) -> bool:
    """Ends the waiting deployment of a completed task (``canceled``) in the caller's unit
    of work; False if it has none.

    Raises InvalidState ``deployment_deciding`` while a process is deciding it.
    """
    if not repository.delete_unclaimed_wait(session, task_id):
        if repository.get_wait(session, task_id) is not None:
            raise InvalidState(
                f"the deployment of task {task_id!r} is being decided right now",
                code="deployment_deciding",
            )
        return False
    task = tasks.get(session, task_id)
    before = (task.deployment or {}).get("blue_before") if task is not None else None
    record_outcome(
        session,
        task_id,
        TaskDeployment(
            status=DeploymentStatus.canceled,
            blue_before=before,
            blue_after=before,
            detail="the wait was ended by canceling the task; not deployed",
        ),
    )
    return True


class TaskDeployer:
    """Fine-tuning's ``Deployer`` port: deploy_as_blue after a completion, and the end of
    a waiting deployment when its task is canceled."""

    def __init__(self, settings: Settings, inference: Inference | None = None) -> None:
        self._settings = settings
        self._inference = inference

    def after_completion(self, task_id: str) -> None:
        deploy_completed_task(task_id, self._settings, self._inference)

    def end_wait(self, session: Session, task_id: str) -> bool:
        return cancel_wait(session, task_id)
