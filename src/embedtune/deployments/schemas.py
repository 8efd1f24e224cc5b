"""Wire models: the OpenAI-compatible embeddings API, the deployments API, and the
``deployment`` object of a fine-tuning task."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from embedtune.training.metric_names import METRIC_NAMES

#: The most texts one request may embed (the OpenAI API's own limit).
MAX_INPUTS = 2048
BLUE_ALIAS = "blue"


class EmbeddingsRequest(BaseModel):
    """``POST /v1/embeddings``. ``model`` is a model id, or ``blue`` / absent for the live
    model. ``dimensions`` is not supported; ``user`` is accepted and ignored."""

    model_config = ConfigDict(extra="forbid")

    input: str | list[str] = Field(
        description="A text or a list of up to 2,048 texts; none may be empty."
    )
    model: str | None = Field(default=None, max_length=255)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(
        description="floats, or with encoding_format base64 the little-endian float32 bytes"
    )


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str = Field(description="The model that embedded every text of the request.")
    usage: Usage


class BlueOut(BaseModel):
    model_id: str
    since: datetime


class BluePeriod(BaseModel):
    model_id: str
    since: datetime
    until: datetime | None


class DeploymentsOut(BaseModel):
    blue: BlueOut | None = Field(description="The live model; null until one is deployed.")
    history: list[BluePeriod] = Field(description="Previous blue models, the latest first.")
    loaded: list[str] = Field(description="Models in this process's memory.")


class BlueUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, max_length=255)


class DeploymentStatus(StrEnum):
    deployed = "deployed"
    skipped_not_better = "skipped_not_better"
    waiting = "waiting"
    conflict = "conflict"
    failed = "failed"
    #: The wait was ended by canceling the task.
    canceled = "canceled"


class TaskDeployment(BaseModel):
    """What ``deploy_as_blue`` did with a completed task's model."""

    model_config = ConfigDict(extra="allow")

    status: DeploymentStatus
    blue_before: str | None
    blue_after: str | None
    detail: str


class DeployOptions(BaseModel):
    """``metadata["deploy"]`` of a task."""

    model_config = ConfigDict(extra="forbid")

    #: The quality gate: deploy only a model that beats blue on the task's held-out set.
    require_improvement: bool = True
    #: The held-out metric compared (one of the training's ``METRIC_NAMES``).
    metric: str = "mrr@10"

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRIC_NAMES:
            raise ValueError(f"must be one of {', '.join(METRIC_NAMES)}")
        return value

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> DeployOptions:
        """Raises ``pydantic.ValidationError`` on a bad ``metadata["deploy"]``."""
        return cls.model_validate(metadata.get("deploy") or {})
