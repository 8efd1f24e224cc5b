from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from embedtune.core.wire import StoredText

#: The longest text of an example, in characters (far beyond any model's token limit).
MAX_EXAMPLE_CHARS = 100_000
#: Examples in one JSON body (larger batches go as JSONL files).
MAX_JSON_EXAMPLES = 1_000_000


class Example(BaseModel):
    """One training pair, as stored (documentation of the JSONL line format)."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_EXAMPLE_CHARS)
    positive: str = Field(min_length=1, max_length=MAX_EXAMPLE_CHARS)
    negative: str | None = Field(default=None, min_length=1, max_length=MAX_EXAMPLE_CHARS)


class BatchCreate(BaseModel):
    """The JSON form of ``POST /batches``; examples are validated one by one."""

    model_config = ConfigDict(extra="forbid")

    name: StoredText | None = Field(default=None, min_length=1, max_length=255)
    examples: list[Any] = Field(max_length=MAX_JSON_EXAMPLES)


class BatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    num_examples: int
    created_at: datetime
    #: ``upload``, or ``feedback`` for a batch released from search feedback.
    source: str = "upload"
    release_id: str | None = None
    num_sessions: int | None = None
    num_clicks: int | None = None
