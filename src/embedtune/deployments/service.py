"""The rules of serving and of blue/green deployment.

The ``deployment_slot`` row is the truth about which model is blue. Every switch holds the
slot's lock (one deployment at a time across all processes), loads the new model first and
then moves the slot in one guarded UPDATE that also releases the lock. Each API process
serves the blue it last loaded and moves to a newer one only once it is loaded (see
:func:`refresh_blue`), so a request is served wholly by one model and never waits on a load
it did not ask for.

``deploy_as_blue``: after a task completes, :func:`deploy_completed_task` decides whether its
model becomes blue. A conflict is a deployment in progress or a blue that changed since the
task was created. With ``wait_on_conflict`` the decision is parked in ``deployment_wait``
(no thread, no model held) and :func:`decide_waiting` takes it up in a later pass of the API
process's loop: as soon as no deployment is in progress, the model competes with the blue of
that moment; at ``EMBEDTUNE_DEPLOY_WAIT_TIMEOUT`` with a deployment still in progress the
outcome is ``conflict``. Canceling the (completed) task ends a wait: ``canceled``.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sentence_transformers import SentenceTransformer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from embedtune.batches import service as batches
from embedtune.core import artifacts, telemetry
from embedtune.core.config import Settings
from embedtune.core.db import new_session, unit_of_work, utcnow
from embedtune.core.errors import InvalidState, Unprocessable
from embedtune.core.ids import new_id
from embedtune.deployments import exports, repository
from embedtune.deployments.backends import ModelNotServable, load_sentence_transformer
from embedtune.deployments.inference import BlueRef, Inference, LoadedModel
from embedtune.deployments.schemas import (
    BLUE_ALIAS,
    BlueOut,
    BluePeriod,
    DeploymentsOut,
    DeploymentStatus,
    DeployOptions,
    TaskDeployment,
)
from embedtune.fine_tuning import repository as tasks
from embedtune.fine_tuning.states import EventKind
from embedtune.fine_tuning.tables import Task
from embedtune.models import repository as models_repository
from embedtune.models import service as models
from embedtune.models.tables import EmbeddingModel
from embedtune.training.data import Example, load_examples, split_examples
from embedtune.training.evaluation import retrieval_metrics
from embedtune.webhooks import service as webhooks

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 50


class DeploymentInProgress(InvalidState):
    code = "deployment_in_progress"

    def __init__(self) -> None:
        super().__init__("another deployment is in progress; try again when it is done")


def validate_deploy_options(metadata: dict[str, Any]) -> None:
    """Check ``metadata["deploy"]`` at task creation; raises ``ValueError`` naming the error."""
    try:
        DeployOptions.from_metadata(metadata)
    except ValidationError as exc:
        problems = "; ".join(
            f"deploy.{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        raise ValueError(problems) from exc


# --- Serving


def servable_model(session: Session, model_id: str) -> EmbeddingModel:
    """A registered model whose plugin is installed and whose files exist.

    Raises NotFound (``model_not_found``, ``model_files_missing``), Unprocessable
    (``plugin_unavailable``).
    """
    model = models.get_model(session, model_id)
    models.require_plugin(model.plugin, for_training=False)
    models.model_directory(model)
    return model


def _load(inference: Inference, model: EmbeddingModel) -> LoadedModel:
    """Raises Unprocessable ``model_not_servable``."""
    try:
        with telemetry.MODEL_LOAD.time():
            return inference.models.load(model.id, artifacts.local_model_dir(model.path))
    except ModelNotServable as exc:
        raise Unprocessable(
            f"model {model.id!r} cannot be served: {exc}", code="model_not_servable"
        ) from exc


def ensure_blue(session: Session) -> None:
    """Makes the bundled model blue when nothing is yet (first start); safe to race."""
    if repository.get_blue(session) is not None:
        return
    if models_repository.get(session, models.BUNDLED_MODEL_ID) is None:
        return
    try:
        repository.insert_initial_blue(session, models.BUNDLED_MODEL_ID)
        session.commit()
    except IntegrityError:
        session.rollback()


def _load_blue(inference: Inference) -> LoadedModel:
    """Loads the database's blue model and makes it this process's blue (blocking).

    Raises InvalidState ``no_blue_model`` and the errors of :func:`servable_model`.
    """
    with new_session() as session:
        slot = repository.get_blue(session)
        if slot is None:
            raise InvalidState(
                "no model is blue; make one live with PUT /deployments/blue",
                code="no_blue_model",
            )
        model = servable_model(session, slot.model_id)
        ref = BlueRef(slot.model_id, slot.version)
    loaded = _load(inference, model)
    inference.blue.advance(ref)
    return loaded


def _load_named(inference: Inference, model_id: str) -> LoadedModel:
    with new_session() as session:
        model = servable_model(session, model_id)
    return _load(inference, model)


async def resolve(inference: Inference, name: str | None) -> LoadedModel:
    """The loaded model for a request; loads it (off the event loop) if needed."""
    if name is None or name == BLUE_ALIAS:
        ref = inference.blue.get()
        loaded = inference.models.get(ref.model_id) if ref is not None else None
        if loaded is None:
            loaded = await run_in_threadpool(_load_blue, inference)
        return loaded
    loaded = inference.models.get(name)
    if loaded is None:
        loaded = await run_in_threadpool(_load_named, inference, name)
    return loaded


def refresh_blue(inference: Inference) -> None:
    """Moves this process to the database's blue once it is loaded; the old one serves
    meanwhile. Does nothing until this process first served blue (a request loads it)."""
    ref = inference.blue.get()
    if ref is None:
        return
    with new_session() as session:
        slot = repository.get_blue(session)
        if slot is None or slot.version <= ref.version:
            return
        model = servable_model(session, slot.model_id)
        new_ref = BlueRef(slot.model_id, slot.version)
    _load(inference, model)
    inference.blue.advance(new_ref)
    logger.info("now serving blue model_id=%s (version %d)", new_ref.model_id, new_ref.version)


# --- Deployments


@unit_of_work
def get_deployments(session: Session, inference: Inference, settings: Settings) -> DeploymentsOut:
    slot = repository.get_blue(session)
    periods = repository.list_history(session, HISTORY_LIMIT + 1)
    return DeploymentsOut(
        blue=BlueOut(model_id=slot.model_id, since=slot.since) if slot is not None else None,
        history=[
            BluePeriod(model_id=p.model_id, since=p.since, until=p.until)
            for p in periods
            if p.until is not None
        ][:HISTORY_LIMIT],
        loaded=inference.models.loaded_ids(),
        models=exports.list_serving(session, inference, settings),
    )


@contextmanager
def _deployment_lock(session: Session, settings: Settings) -> Iterator[str]:
    """Holds the slot's lock meanwhile; raises DeploymentInProgress if another holds it."""
    token = new_id("lock-")
    expires_at = utcnow() + timedelta(seconds=settings.deploy_lock_timeout)
    if not repository.take_lock(session, token, expires_at):
        session.rollback()
        raise DeploymentInProgress()
    session.commit()
    try:
        yield token
    finally:
        session.rollback()
        repository.release_lock(session, token)  # a no-op after a switch, which released it
        session.commit()


def _switch(
    session: Session, inference: Inference, settings: Settings, model_id: str, reason: str
) -> None:
    """Loads ``model_id`` here, then makes it blue (in the database and in this process)."""
    model = servable_model(session, model_id)
    slot = repository.get_blue(session)
    session.commit()  # no transaction (on SQLite: no write lock) while the model loads
    if slot is None:
        _load(inference, model)
        repository.insert_initial_blue(session, model_id)
        session.commit()
        return
    if slot.model_id == model_id:
        return
    # Read now: the commits below expire ``slot``, which would then reload the new model.
    before = slot.model_id
    with _deployment_lock(session, settings) as token:
        _load(inference, model)
        if not repository.switch_blue(session, token, model_id, reason, task_id=None):
            raise DeploymentInProgress()  # our lock expired and another deployment took it
        _notify_changed(session, before, model_id, reason, None)
        session.commit()
    slot = repository.get_blue(session)
    if slot is not None:
        inference.blue.advance(BlueRef(slot.model_id, slot.version))
    logger.info("blue is now model_id=%s (%s)", model_id, reason)


@unit_of_work
def set_blue(
    session: Session, inference: Inference, settings: Settings, model_id: str
) -> DeploymentsOut:
    """Makes ``model_id`` blue once it is loaded here (a no-op if it already is).

    Raises NotFound (``model_not_found``, ``model_files_missing``), Unprocessable
    (``plugin_unavailable``, ``model_not_servable``) and InvalidState
    (``deployment_in_progress``).
    """
    _switch(session, inference, settings, model_id, "manual")
    return get_deployments(session, inference, settings)


@unit_of_work
def rollback(session: Session, inference: Inference, settings: Settings) -> DeploymentsOut:
    """Makes the previous blue model blue again. Raises InvalidState (``no_previous_blue``,
    ``deployment_in_progress``) and the errors of :func:`set_blue`."""
    previous = repository.previous_blue(session)
    if previous is None:
        raise InvalidState("there is no previous blue model", code="no_previous_blue")
    _switch(session, inference, settings, previous.model_id, "rollback")
    return get_deployments(session, inference, settings)


def _notify_changed(
    session: Session, before: str | None, after: str, reason: str, task_id: str | None
) -> None:
    """A ``deployment.changed`` webhook, committed with the switch."""
    webhooks.enqueue(
        session,
        "deployment.changed",
        {
            "slot": "blue",
            "model_before": before,
            "model_after": after,
            "reason": reason,
            "task_id": task_id,
        },
    )


# --- deploy_as_blue


def _record(session: Session, task_id: str, outcome: TaskDeployment) -> None:
    payload = outcome.model_dump(mode="json")
    repository.set_task_deployment(session, task_id, payload)
    tasks.add_event(session, task_id, EventKind.deployment, **payload)


def _load_to_check(model: EmbeddingModel) -> SentenceTransformer:
    """Raises ValueError if Sentence-Transformers cannot load ``model``."""
    try:
        return load_sentence_transformer(artifacts.local_model_dir(model.path))
    except ModelNotServable as exc:
        raise ValueError(f"model {model.id!r} cannot be served: {exc}") from exc


def _evaluate(model: EmbeddingModel, examples: list[Example], metric: str) -> float:
    loaded = _load_to_check(model)
    try:
        return retrieval_metrics(loaded, examples)[metric]
    finally:
        del loaded
        gc.collect()


@dataclass
class _Gate:
    """What the quality gate needs, read from the database before any model is loaded."""

    metric: str
    candidate: EmbeddingModel
    blue: EmbeddingModel
    #: The training's own figures where they apply (``after``; ``before`` if blue is the base).
    candidate_score: float | None
    blue_score: float | None
    #: The batch's path or ``s3://`` URI, made local only when examples are needed.
    batch_path: str | None

    @classmethod
    def read(cls, session: Session, task: Task, blue_id: str, metric: str) -> _Gate:
        assert task.best_model_id is not None
        metrics = task.metrics or {}
        before = (metrics.get("before") or {}).get(metric)
        batch = batches.get_batch(session, task.batch_id) if task.batch_id is not None else None
        return cls(
            metric=metric,
            candidate=models.get_model(session, task.best_model_id),
            blue=models.get_model(session, blue_id),
            candidate_score=(metrics.get("after") or {}).get(metric),
            blue_score=before if blue_id == task.embedding_model_id else None,
            batch_path=batch.path if batch is not None else None,
        )

    def scores(self) -> tuple[float, float]:
        """(candidate, blue) on the task's held-out examples, evaluating only what the
        training did not. Raises ValueError without held-out examples or loadable models."""
        candidate, blue = self.candidate_score, self.blue_score
        if candidate is None or blue is None:
            if self.batch_path is None:
                raise ValueError("the task has no batch, so no held-out examples to compare on")
            examples = load_examples(artifacts.local_batch_file(self.batch_path))
            held_out = split_examples(examples).eval
            if not held_out:
                raise ValueError("the task's batch has no held-out examples to compare on")
            if candidate is None:
                candidate = _evaluate(self.candidate, held_out, self.metric)
            if blue is None:
                blue = _evaluate(self.blue, held_out, self.metric)
        return float(candidate), float(blue)


def _conflict(
    session: Session, task: Task, settings: Settings, blue_id: str, reason: str, claim: str | None
) -> None:
    """Waits (``wait_on_conflict``, first time) or ends in ``conflict``; commits."""
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
            session.commit()
            return
        if not repository.delete_claimed_wait(session, task.id, claim):
            session.rollback()
            return
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
    _record(session, task.id, outcome)
    session.commit()
    logger.info("deployment of task_id=%s: %s (%s)", task.id, outcome.status, reason)


def _finish(session: Session, task_id: str, outcome: TaskDeployment, claim: str | None) -> bool:
    """Records a final outcome in the caller's transaction; False (rolled back) if the
    wait it decided was canceled meanwhile."""
    if claim is not None and not repository.delete_claimed_wait(session, task_id, claim):
        session.rollback()
        logger.info("deployment of task_id=%s was canceled while being decided", task_id)
        return False
    _record(session, task_id, outcome)
    return True


def _decide(
    session: Session,
    task: Task,
    settings: Settings,
    inference: Inference | None,
    claim: str | None,
) -> None:
    """One deployment decision for a completed task (see the module docstring).

    ``claim`` is the token of a waiting deployment taken up by :func:`decide_waiting`.
    """
    slot = repository.get_blue(session)
    if slot is None:
        raise ValueError("no model is blue yet; make one live with PUT /deployments/blue")
    if claim is None and slot.since > task.created_at:
        reason = f"blue changed to {slot.model_id!r} since the task was created"
        _conflict(session, task, settings, slot.model_id, reason, claim)
        return
    try:
        with _deployment_lock(session, settings) as token:
            _decide_locked(session, task, inference, claim, token)
    except DeploymentInProgress:
        _conflict(
            session, task, settings, slot.model_id, "another deployment is in progress", claim
        )


def _decide_locked(
    session: Session, task: Task, inference: Inference | None, claim: str | None, token: str
) -> None:
    """The quality gate and the switch, under the deployment lock ``token``."""
    assert task.best_model_id is not None
    candidate_id = task.best_model_id
    options = DeployOptions.from_metadata(task.metadata_)
    slot = repository.get_blue(session)
    assert slot is not None
    blue_id = slot.model_id
    model = servable_model(session, candidate_id)
    gate = _Gate.read(session, task, blue_id, options.metric)
    # End the transaction before loading models: on SQLite it holds the write lock.
    session.commit()
    scores: dict[str, Any] = {}
    gain = "quality gate off"
    if options.require_improvement:
        candidate, blue = gate.scores()
        scores = {"metric": options.metric, "candidate": candidate, "blue": blue}
        comparison = f"{options.metric} {candidate:.4f} vs blue's {blue:.4f}"
        if candidate <= blue:
            outcome = TaskDeployment(
                status=DeploymentStatus.skipped_not_better,
                blue_before=blue_id,
                blue_after=blue_id,
                detail=f"not better than blue ({comparison}); not deployed",
                **scores,
            )
            if _finish(session, task.id, outcome, claim):
                session.commit()
            return
        gain = comparison
    if inference is not None:
        _load(inference, model)
    else:
        # The serving processes load it themselves; prove here that they can.
        _load_to_check(model)
        gc.collect()
    if not repository.switch_blue(session, token, candidate_id, "task", task.id):
        raise ValueError("the deployment lock expired before the switch")
    _notify_changed(session, blue_id, candidate_id, "task", task.id)
    outcome = TaskDeployment(
        status=DeploymentStatus.deployed,
        blue_before=blue_id,
        blue_after=candidate_id,
        detail=f"deployed as blue ({gain})",
        **scores,
    )
    if _finish(session, task.id, outcome, claim):
        session.commit()
        logger.info("task_id=%s deployed model_id=%s as blue", task.id, candidate_id)


def _fail(task_id: str, exc: Exception, claim: str | None) -> None:
    """Records ``failed``; a failure to record is logged, never raised."""
    try:
        with new_session(writer=True) as session:
            slot = repository.get_blue(session)
            blue_id = slot.model_id if slot is not None else None
            outcome = TaskDeployment(
                status=DeploymentStatus.failed,
                blue_before=blue_id,
                blue_after=blue_id,
                detail=f"{type(exc).__name__}: {exc}",
            )
            if _finish(session, task_id, outcome, claim):
                session.commit()
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
        with new_session(writer=True) as session:
            claimed = repository.claim_wait(session, wait.task_id, token, lease_until)
            session.commit()
        if claimed:
            taken += 1
            _run_decision(wait.task_id, settings, inference, claim=token)
    return taken


def cancel_wait(session: Session, task_id: str) -> bool:
    """Ends the waiting deployment of a completed task (``canceled``); False if it has none.

    Raises InvalidState ``deployment_deciding`` while a process is deciding it.
    """
    if not repository.delete_unclaimed_wait(session, task_id):
        session.rollback()
        if repository.get_wait(session, task_id) is not None:
            raise InvalidState(
                f"the deployment of task {task_id!r} is being decided right now",
                code="deployment_deciding",
            )
        return False
    task = tasks.get(session, task_id)
    before = (task.deployment or {}).get("blue_before") if task is not None else None
    _record(
        session,
        task_id,
        TaskDeployment(
            status=DeploymentStatus.canceled,
            blue_before=before,
            blue_after=before,
            detail="the wait was ended by canceling the task; not deployed",
        ),
    )
    session.commit()
    return True
