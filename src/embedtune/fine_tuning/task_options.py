"""Checks of a new task's ``metadata`` options, made before the task is stored.

``metadata.training`` belongs to the model's plugin and ``metadata.deploy`` to deployments;
every other top-level key is the user's own, except the names of those options: set there
by mistake they would be silently ignored, so they are refused with a hint.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from embedtune.batches import repository as batches
from embedtune.core.errors import Unprocessable
from embedtune.fine_tuning.schemas import DeployOptions
from embedtune.training.options import misplaced_option
from embedtune.training.plugin import FineTuningPlugin

DEPLOY_OPTION_NAMES = set(DeployOptions.model_fields)


def check_task_options(
    session: Session,
    plugin: FineTuningPlugin,
    metadata: dict[str, Any],
    batch_examples: int | None,
) -> None:
    """Raises Unprocessable ``invalid_training_options`` (a bad, unknown or misplaced
    training option, or a validation batch that does not exist), ``invalid_deploy_options``
    and ``batch_too_small`` (too few examples left to train on)."""
    try:
        plugin.validate_training_options(metadata)
    except ValueError as exc:
        raise Unprocessable(str(exc), code="invalid_training_options") from exc
    if hint := misplaced_option(metadata, DEPLOY_OPTION_NAMES, "deploy"):
        raise Unprocessable(hint, code="invalid_deploy_options")
    try:
        DeployOptions.from_metadata(metadata)
    except ValidationError as exc:
        problems = "; ".join(
            f"deploy.{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        raise Unprocessable(problems, code="invalid_deploy_options") from exc
    validation_batch_id = plugin.validation_batch_id(metadata)
    if validation_batch_id is not None and batches.get(session, validation_batch_id) is None:
        raise Unprocessable(
            f"training.validation_batch_id: batch {validation_batch_id!r} not found",
            code="invalid_training_options",
        )
    if batch_examples is not None:
        try:
            plugin.validate_batch_size(metadata, batch_examples)
        except ValueError as exc:
            raise Unprocessable(str(exc), code="batch_too_small") from exc
