from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from embedtune.deployments.schemas import TaskDeployment
from embedtune.fine_tuning.states import TaskStatus


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding_model_id: str = Field(min_length=1, max_length=255)
    batch_id: str | None = Field(default=None, min_length=1, max_length=64)
    metadata: dict[str, Any] | None = None
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
