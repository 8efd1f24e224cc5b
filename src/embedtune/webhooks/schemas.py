from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Every event type a webhook can subscribe to.
EventType = Literal[
    "task.started", "task.completed", "task.failed", "task.canceled", "deployment.changed"
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, description="http:// or https:// receiver")
    events: list[EventType] = Field(min_length=1, max_length=16)
    description: str | None = Field(default=None, max_length=1024)


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    events: list[str]
    description: str | None
    created_at: datetime


class WebhookCreated(WebhookOut):
    #: Shown once: verify the ``webhook-signature`` header with it (Standard Webhooks).
    secret: str


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    #: The ``webhook-id`` header, the same on every attempt.
    message_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
