"""The ``deploy_as_blue`` quality gate: does a completed task's model beat blue, and the
switch when it does, under the deployment lock (see :mod:`embedtune.deployments.waits`).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sentence_transformers import SentenceTransformer
from sqlalchemy.orm import Session

from embedtune.batches import service as batches
from embedtune.core import artifacts
from embedtune.core.db import separate_unit
from embedtune.deployments import repository
from embedtune.deployments.backends import ModelNotServable, load_sentence_transformer
from embedtune.deployments.inference import Inference
from embedtune.deployments.serving import load_model, servable_model
from embedtune.deployments.switches import notify_changed
from embedtune.fine_tuning import transitions
from embedtune.fine_tuning.schemas import DeploymentStatus, DeployOptions, TaskDeployment
from embedtune.fine_tuning.tables import Task
from embedtune.models import service as models
from embedtune.models.tables import EmbeddingModel
from embedtune.training.data import Example, load_examples, split_examples
from embedtune.training.evaluation import retrieval_metrics

logger = logging.getLogger(__name__)


def record_outcome(session: Session, task_id: str, outcome: TaskDeployment) -> None:
    """The task's ``deployment`` and its event, through fine-tuning's repository."""
    transitions.set_deployment(session, task_id, outcome.model_dump(mode="json"))


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


class WaitCanceled(Exception):
    """The waiting deployment being decided was canceled meanwhile: nothing is recorded."""


def finish(session: Session, task_id: str, outcome: TaskDeployment, claim: str | None) -> None:
    """Records a final outcome in the caller's unit of work. Raises WaitCanceled (the unit
    must then roll back) if the wait it decided was canceled meanwhile."""
    if claim is not None and not repository.delete_claimed_wait(session, task_id, claim):
        raise WaitCanceled(task_id)
    record_outcome(session, task_id, outcome)


def _conclude(
    session: Session,
    task_id: str,
    claim: str | None,
    outcome: TaskDeployment,
    switch: Callable[[], None] | None = None,
) -> bool:
    """Records ``outcome``, after ``switch`` if any, in a unit of work of its own; False
    (nothing recorded nor switched) if the wait it decided was canceled meanwhile."""
    try:
        with separate_unit(session):
            if switch is not None:
                switch()
            finish(session, task_id, outcome, claim)
    except WaitCanceled:
        logger.info("deployment of task_id=%s was canceled while being decided", task_id)
        return False
    return True


def decide_locked(
    session: Session, task: Task, inference: Inference | None, claim: str | None, token: str
) -> None:
    """The quality gate and the switch, under the deployment lock ``token``, in units of
    work of their own (as the lock's)."""
    assert task.best_model_id is not None
    candidate_id = task.best_model_id
    options = DeployOptions.from_metadata(task.metadata_)
    # A unit that ends before the models load: on SQLite it holds the write lock.
    with separate_unit(session):
        slot = repository.get_blue(session)
        assert slot is not None
        blue_id = slot.model_id
        model = servable_model(session, candidate_id)
        gate = _Gate.read(session, task, blue_id, options.metric)
    scores: dict[str, Any] = {}
    gain = "quality gate off"
    if options.require_improvement:
        candidate, blue = gate.scores()
        scores = {"metric": options.metric, "candidate": candidate, "blue": blue}
        comparison = f"{options.metric} {candidate:.4f} vs blue's {blue:.4f}"
        if candidate <= blue:
            detail = f"not better than blue ({comparison}); not deployed"
            outcome = _outcome(
                DeploymentStatus.skipped_not_better, blue_id, blue_id, detail, scores
            )
            _conclude(session, task.id, claim, outcome)
            return
        gain = comparison
    if inference is not None:
        load_model(inference, model)
    else:
        # The serving processes load it themselves; prove here that they can.
        _load_to_check(model)
        gc.collect()

    def switch() -> None:
        if not repository.switch_blue(session, token, candidate_id, "task", task.id):
            raise ValueError("the deployment lock expired before the switch")
        notify_changed(session, blue_id, candidate_id, "task", task.id)

    detail = f"deployed as blue ({gain})"
    outcome = _outcome(DeploymentStatus.deployed, blue_id, candidate_id, detail, scores)
    if _conclude(session, task.id, claim, outcome, switch):
        logger.info("task_id=%s deployed model_id=%s as blue", task.id, candidate_id)


def _outcome(
    status: DeploymentStatus, blue_id: str, blue_after: str, detail: str, scores: dict[str, Any]
) -> TaskDeployment:
    """A final outcome of the gate, with its scores (none when the gate is off)."""
    return TaskDeployment(
        status=status, blue_before=blue_id, blue_after=blue_after, detail=detail, **scores
    )
