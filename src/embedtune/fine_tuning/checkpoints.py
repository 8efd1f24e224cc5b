"""Checkpoints of a completed task: kept in the artifact store, listed, registered as models.

The plugin returns the checkpoints it kept (by default the best and the last); the worker
stores each one next to the task's model, and their step, held-out metrics and loss are
recorded in the task's ``metrics["checkpoints"]``. Any of them can then be registered as a
model of its own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from embedtune.core import artifacts
from embedtune.core.db import unit_of_work
from embedtune.core.errors import NotFound
from embedtune.core.ids import new_id
from embedtune.fine_tuning import service
from embedtune.fine_tuning.schemas import CheckpointOut
from embedtune.models import repository as models_repository
from embedtune.models import service as models
from embedtune.models.tables import EmbeddingModel
from embedtune.training.plugin import TrainingResult


def _artifact_id(task_id: str, name: str) -> str:
    return f"{task_id}-{name}"


def store(task_id: str, result: TrainingResult) -> dict[str, Any]:
    """Copy the result's checkpoints to the artifact store; returns the metrics to record,
    each checkpoint with the ``path`` it was stored at (unchanged when there are none)."""
    if not result.checkpoints:
        return result.metrics
    stored = {
        checkpoint.name: artifacts.store_model(
            checkpoint.model_dir, _artifact_id(task_id, checkpoint.name)
        )
        for checkpoint in result.checkpoints
    }
    listed = result.metrics.get("checkpoints") or []
    return {
        **result.metrics,
        "checkpoints": [
            {**entry, "path": stored[entry["name"]]} for entry in listed if entry["name"] in stored
        ],
    }


def remove(task_id: str, result: TrainingResult) -> None:
    """Remove stored checkpoints of a result that was not recorded."""
    for checkpoint in result.checkpoints:
        artifacts.remove_model(_artifact_id(task_id, checkpoint.name))


@unit_of_work
def list_checkpoints(session: Session, task_id: str) -> list[CheckpointOut]:
    """The kept checkpoints of a task, oldest first (none until it completed).

    Raises NotFound ``task_not_found``."""
    task = service.get_task(session, task_id)
    entries = (task.metrics or {}).get("checkpoints") or []
    return [CheckpointOut.model_validate(entry) for entry in entries]


def register_checkpoint(session: Session, task_id: str, name: str) -> EmbeddingModel:
    """Register checkpoint ``name`` of a task as a new model (a copy of its files), in the
    caller's unit of work.

    Raises NotFound ``task_not_found``, ``checkpoint_not_found``."""
    task = service.get_task(session, task_id)
    metrics = task.metrics or {}
    entry = next((e for e in metrics.get("checkpoints") or [] if e.get("name") == name), None)
    if entry is None:
        raise NotFound(f"task {task_id!r} has no checkpoint {name!r}", code="checkpoint_not_found")
    base_model = models_repository.get(session, task.embedding_model_id)
    model_id = new_id("ftm-")
    path = artifacts.store_model(artifacts.local_model_dir(entry["path"]), model_id)
    model = models.register_fine_tuned(
        session,
        model_id=model_id,
        path=path,
        plugin=base_model.plugin if base_model is not None else "sentence-transformers",
        parent_id=task.embedding_model_id,
        task_id=task.id,
        metrics={"before": metrics.get("before"), "after": entry["metrics"], "checkpoint": name},
        checkpoint=name,
    )
    return model
