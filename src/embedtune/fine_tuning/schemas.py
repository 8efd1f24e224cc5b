from __future__ import annotations

import functools
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from embedtune.core.wire import StoredObject
from embedtune.fine_tuning.states import TaskStatus
from embedtune.training.metric_names import METRIC_NAMES

if TYPE_CHECKING:
    from pydantic import GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` references replaced by their definitions."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


class DeploymentStatus(StrEnum):
    #: Recorded with the task's completion: the decision is under way.
    pending = "pending"
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

    @classmethod
    def pending(cls) -> TaskDeployment:
        """What a deploy_as_blue task says from the moment it reads ``completed``."""
        return cls(
            status=DeploymentStatus.pending,
            blue_before=None,
            blue_after=None,
            detail="the model is being checked for deployment as blue",
        )


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


@functools.cache
def metadata_schema() -> dict[str, Any]:
    """The OpenAPI schema of a task's ``metadata``: free-form, but ``training`` and
    ``deploy`` are documented with every option (they are checked when the task is
    created). Made when a JSON schema is first asked for, not on import: the client and
    the CLI import this module and never need it."""
    from embedtune.training.options import TrainingOptions

    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "training": _inline_refs(TrainingOptions.model_json_schema()),
                    "deploy": _inline_refs(DeployOptions.model_json_schema()),
                },
                "additionalProperties": True,
            },
            {"type": "null"},
        ],
        "title": "Metadata",
        "description": (
            "Free-form user metadata, except `training` (the plugin's training options) and "
            "`deploy` (deploy_as_blue options); the names of those options are refused at "
            "the top level."
        ),
        "examples": [{"initiated_by": "admin", "training": {"epochs": 2, "loss": "mnrl"}}],
    }


class _MetadataJsonSchema:
    """``WithJsonSchema(metadata_schema())``, computed only when a JSON schema is made."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return metadata_schema().copy()


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding_model_id: str = Field(min_length=1, max_length=255)
    batch_id: str | None = Field(default=None, min_length=1, max_length=64)
    metadata: Annotated[StoredObject | None, _MetadataJsonSchema()] = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    deploy_as_blue: StrictBool = False
    wait_on_conflict: StrictBool = False


class TaskError(BaseModel):
    code: str
    message: str


class TrainingState(BaseModel):
    """Where a running training is; absent until a worker reports it."""

    model_config = ConfigDict(extra="allow")

    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    trial: int | None = None
    loss: float | None = None


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    embedding_model_id: str
    batch_id: str | None
    status: TaskStatus
    metadata: dict[str, Any] = Field(validation_alias="metadata_")
    idempotency_key: str | None
    deploy_as_blue: bool
    wait_on_conflict: bool
    best_model_id: str | None
    best_model_url: str | None
    progress: float
    training: TrainingState | None = Field(validation_alias="training_state")
    error: TaskError | None
    #: What deploy_as_blue did once the task completed; null until decided.
    deployment: TaskDeployment | None = None
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    #: Pending: 1 is the next task a free worker of its queue claims; null otherwise.
    queue_position: int | None = None
    #: When a pending task should start (null with no live worker or no measured run).
    estimated_start_at: datetime | None = None
    #: When the task should finish, from this run's step rate or recent runs; null if unknown.
    estimated_finish_at: datetime | None = None


class TaskEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    #: Increasing in commit order: the stream's ``id:`` (``Last-Event-ID``).
    id: int
    kind: str
    detail: dict[str, Any]
    created_at: datetime


class TaskMetricsOut(BaseModel):
    task_id: str
    status: TaskStatus
    metrics: dict[str, Any] | None


class CheckpointOut(BaseModel):
    """A checkpoint kept from a task's training; register it to serve it as a model."""

    name: str = Field(description="Its id within the task, e.g. step-40.")
    step: int
    metrics: dict[str, float] = Field(description="Held-out metrics at that step.")
    loss: float | None = Field(description="Training loss at that step.")
    best: bool = Field(description="The best by the task's metric_for_best.")
    last: bool
