"""What ``/v1/*`` needs beyond embeddings to pass for the OpenAI API: its error envelope and
its model list.

Errors there read ``{"error": {"message", "type", "param", "code"}}``, so the ``openai``
SDK shows the message and raises the matching exception class; ``code`` is embedtune's
stable code. ``/v1/models`` lists the registered models as OpenAI model objects, with the
``blue`` alias first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from embedtune.core.db import unit_of_work
from embedtune.deployments import repository
from embedtune.deployments.schemas import BLUE_ALIAS, OpenAIModel, OpenAIModelList
from embedtune.models import repository as models_repository
from embedtune.models import service as models
from embedtune.models.tables import EmbeddingModel

OPENAI_PATH_PREFIX = "/v1/"
#: The most models ``GET /v1/models`` lists (the newest), as it has no paging.
MAX_LISTED_MODELS = 1000
OWNER = "embedtune"


def _error_type(status_code: int) -> str:
    if status_code == 401:
        return "authentication_error"
    if status_code == 403:
        return "permission_error"
    if status_code == 429:
        return "rate_limit_error"
    if status_code >= 500:
        return "server_error"
    return "invalid_request_error"


def _param(extra: Mapping[str, Any]) -> str | None:
    """The request field at fault: an error's own, or the first field validation names."""
    param = extra.get("param")
    if isinstance(param, str):
        return param
    for error in extra.get("errors") or ():
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        if location:
            return ".".join(location)
    return None


def openai_error(
    status_code: int, detail: str, code: str, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """OpenAI's error envelope (an ``errors`` list of a validation error is kept in it)."""
    error: dict[str, Any] = {
        "message": detail,
        "type": _error_type(status_code),
        "param": _param(extra),
        "code": code,
    }
    if "errors" in extra:
        error["errors"] = extra["errors"]
    return {"error": error}


def _timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def _model_object(model: EmbeddingModel, blue_id: str | None) -> OpenAIModel:
    return OpenAIModel(
        id=model.id,
        created=_timestamp(model.created_at),
        owned_by=OWNER,
        name=model.name,
        parent=model.parent_id,
        blue=model.id == blue_id,
    )


def _blue_object(session: Session) -> OpenAIModel | None:
    slot = repository.get_blue(session)
    if slot is None:
        return None
    return OpenAIModel(
        id=BLUE_ALIAS,
        created=_timestamp(slot.since),
        owned_by=OWNER,
        name=f"the live model ({slot.model_id})",
        root=slot.model_id,
        blue=True,
    )


@unit_of_work
def list_models(session: Session) -> OpenAIModelList:
    """``blue`` (when a model is live), then the registered models, newest first."""
    slot = repository.get_blue(session)
    blue_id = slot.model_id if slot is not None else None
    registered = models_repository.list_newest_first(session, 0, MAX_LISTED_MODELS)
    blue = _blue_object(session)
    data = ([blue] if blue is not None else []) + [_model_object(m, blue_id) for m in registered]
    return OpenAIModelList(data=data)


@unit_of_work
def get_model(session: Session, model_id: str) -> OpenAIModel:
    """One model, or ``blue``; raises NotFound (``model_not_found``)."""
    if model_id == BLUE_ALIAS:
        blue = _blue_object(session)
        if blue is None:
            raise models.model_not_found(model_id)
        return blue
    slot = repository.get_blue(session)
    return _model_object(models.get_model(session, model_id), slot.model_id if slot else None)
