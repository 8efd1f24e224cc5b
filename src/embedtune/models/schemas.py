from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from embedtune.core.wire import StoredText
from embedtune.training.plugins import DEFAULT_PLUGIN


class ModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._\-]+$"
    )
    name: StoredText = Field(min_length=1, max_length=255)
    path: StoredText = Field(min_length=1, max_length=4096)
    plugin: str = Field(default=DEFAULT_PLUGIN, min_length=1, max_length=255)


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    plugin: str
    parent_id: str | None
    task_id: str | None
    metrics: dict[str, Any] | None
    created_at: datetime
