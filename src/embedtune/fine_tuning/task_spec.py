"""What the worker hands a plugin about a task: its metadata, its validation batch and the
worker's settings for the run (the plugin reads no global settings)."""

from __future__ import annotations

from embedtune.batches import service as batches
from embedtune.core import artifacts
from embedtune.core.config import Settings
from embedtune.core.db import new_session
from embedtune.core.errors import NotFound
from embedtune.fine_tuning.tables import Task
from embedtune.training.plugin import BatchSpec, FineTuningPlugin, PluginError, TaskSpec


def task_spec(task: Task, plugin: FineTuningPlugin, settings: Settings) -> TaskSpec:
    """The plugin's view of ``task``; raises :class:`PluginError` when its validation batch
    was deleted since the task was created."""
    metadata = dict(task.metadata_)
    validation: BatchSpec | None = None
    validation_id = plugin.validation_batch_id(metadata)
    if validation_id is not None:
        with new_session() as session:
            try:
                batch = batches.get_batch(session, validation_id)
            except NotFound as exc:
                raise PluginError("validation_batch_not_found", str(exc)) from exc
        validation = BatchSpec(
            id=batch.id,
            path=artifacts.local_batch_file(batch.path),
            num_examples=batch.num_examples,
        )
    return TaskSpec(
        id=task.id,
        metadata=metadata,
        validation_batch=validation,
        checkpoint_every=settings.checkpoint_every,
        mlflow_tracking_uri=settings.mlflow_tracking_uri,
    )
