"""HTTP routes: ``/v1/embeddings`` (OpenAI-compatible) and ``/deployments``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from embedtune.core.config import SettingsDep
from embedtune.core.db import SessionDep
from embedtune.core.errors import error_responses
from embedtune.deployments import embeddings, openai_compat, switches
from embedtune.deployments.inference import Inference
from embedtune.deployments.schemas import (
    BlueUpdate,
    DeploymentsOut,
    EmbeddingsRequest,
    EmbeddingsResponse,
    OpenAIError,
    OpenAIModel,
    OpenAIModelList,
)


def get_inference(request: Request) -> Inference:
    inference: Inference = request.app.state.inference
    return inference


InferenceDep = Annotated[Inference, Depends(get_inference)]

router = APIRouter(tags=["deployments"])


def _openai_errors(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of ``/v1/*`` errors, which come in OpenAI's envelope."""
    return {
        code: {"model": OpenAIError, "description": entry["description"]}
        for code, entry in error_responses(*status_codes).items()
    }


@router.post(
    "/v1/embeddings",
    response_class=JSONResponse,
    tags=["openai"],
    responses={
        200: {"model": EmbeddingsResponse, "description": "The embeddings, in input order"},
        **_openai_errors(401, 404, 409, 413, 422),
    },
)
async def create_embeddings(body: EmbeddingsRequest, inference: InferenceDep) -> JSONResponse:
    """Embed texts with a model, or with the blue model when ``model`` is ``blue`` or absent.

    Compatible with the OpenAI embeddings API, errors included. Texts longer than the
    model's token limit are refused with 422 ``input_too_long`` rather than truncated.
    """
    # Built as plain JSON: validating thousands of floats through a response model would
    # cost more than encoding them.
    return JSONResponse(await embeddings.create_embeddings(inference, body))


@router.get(
    "/v1/models", response_model=OpenAIModelList, tags=["openai"], responses=_openai_errors(401)
)
def list_openai_models(session: SessionDep) -> OpenAIModelList:
    """The registered models as OpenAI model objects, ``blue`` (the live model) first."""
    return openai_compat.list_models(session)


@router.get(
    "/v1/models/{model_id}",
    response_model=OpenAIModel,
    tags=["openai"],
    responses=_openai_errors(401, 404),
)
def get_openai_model(
    model_id: Annotated[str, Path(max_length=255)], session: SessionDep
) -> OpenAIModel:
    """One registered model, or ``blue``; 404 ``model_not_found``."""
    return openai_compat.get_model(session, model_id)


@router.get("/deployments", response_model=DeploymentsOut)
def get_deployments(
    session: SessionDep, inference: InferenceDep, settings: SettingsDep
) -> DeploymentsOut:
    """The blue model, the previous ones (latest first), the models in this process, and
    each model's serving engine and export status."""
    return switches.get_deployments(session, inference, settings)


@router.put(
    "/deployments/blue", response_model=DeploymentsOut, responses=error_responses(404, 409, 422)
)
def set_blue(
    body: BlueUpdate, session: SessionDep, inference: InferenceDep, settings: SettingsDep
) -> DeploymentsOut:
    """Make a model live. It is loaded before it takes traffic; requests in flight finish
    on the old one. 409 ``deployment_in_progress`` while another deployment runs."""
    # No transaction here: a switch commits its lock before the model loads (see switches).
    return switches.set_blue(session, inference, settings, body.model_id)


@router.post("/deployments/rollback", response_model=DeploymentsOut, responses=error_responses(409))
def rollback(session: SessionDep, inference: InferenceDep, settings: SettingsDep) -> DeploymentsOut:
    """Make the previous blue model live again (409 ``no_previous_blue`` if there is none)."""
    # No transaction here, as for set_blue: the switch's units of work are its own.
    return switches.rollback(session, inference, settings)
