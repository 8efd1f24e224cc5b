"""Serving: which loaded model answers a request, and moving this process to a new blue.

The ``deployment_slot`` row is the truth about which model is blue. Each API process serves
the blue it last loaded and moves to a newer one only once it is loaded (see
:func:`refresh_blue`), so a request is served wholly by one model and never waits on a load
it did not ask for.
"""

from __future__ import annotations

import logging

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from embedtune.core import artifacts, telemetry
from embedtune.core.db import new_session
from embedtune.core.errors import InvalidState, Unprocessable
from embedtune.deployments import repository
from embedtune.deployments.backends import ModelNotServable
from embedtune.deployments.inference import BlueRef, Inference, LoadedModel
from embedtune.deployments.schemas import BLUE_ALIAS
from embedtune.models import repository as models_repository
from embedtune.models import service as models
from embedtune.models.tables import EmbeddingModel

logger = logging.getLogger(__name__)


def servable_model(session: Session, model_id: str) -> EmbeddingModel:
    """A registered model whose plugin is installed and whose files exist.

    Raises NotFound (``model_not_found``, ``model_files_missing``), Unprocessable
    (``plugin_unavailable``).
    """
    model = models.get_model(session, model_id)
    models.require_plugin(model.plugin, for_training=False)
    models.model_directory(model)
    return model


def load_model(inference: Inference, model: EmbeddingModel) -> LoadedModel:
    """Raises Unprocessable ``model_not_servable``."""
    try:
        with telemetry.MODEL_LOAD.time():
            return inference.models.load(model.id, artifacts.local_model_dir(model.path))
    except ModelNotServable as exc:
        raise Unprocessable(
            f"model {model.id!r} cannot be served: {exc}", code="model_not_servable"
        ) from exc


def ensure_blue(session: Session) -> None:
    """Makes the bundled model blue when nothing is yet (first start), in the caller's unit
    of work; safe to race."""
    if repository.get_blue(session) is not None:
        return
    if models_repository.get(session, models.BUNDLED_MODEL_ID) is None:
        return
    try:
        with session.begin_nested():
            repository.insert_initial_blue(session, models.BUNDLED_MODEL_ID)
    except IntegrityError:
        pass  # a process starting at the same time made it blue first


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
    loaded = load_model(inference, model)
    inference.blue.advance(ref)
    return loaded


def _load_named(inference: Inference, model_id: str) -> LoadedModel:
    with new_session() as session:
        model = servable_model(session, model_id)
    return load_model(inference, model)


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
    load_model(inference, model)
    inference.blue.advance(new_ref)
    logger.info("now serving blue model_id=%s (version %d)", new_ref.model_id, new_ref.version)
