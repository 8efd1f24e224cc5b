"""Wire models of search feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from embedtune.core.wire import StoredObject

#: The most results one session may show.
MAX_RESULTS = 100

Id = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class ResultIn(BaseModel):
    """One shown result; ``text`` is needed the first time its ``id`` is seen."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    text: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] | None = None


class SessionIn(BaseModel):
    """One search session: the query, the results in the order shown, and the clicks."""

    model_config = ConfigDict(extra="forbid")

    session_id: Id
    query: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    results: list[ResultIn] = Field(min_length=1, max_length=MAX_RESULTS)
    clicks: list[Id] = Field(default_factory=list, max_length=MAX_RESULTS)
    user_id: Id | None = None
    created_at: datetime | None = None
    #: Free-form; its texts and depth are checked as the task's metadata is.
    metadata: StoredObject | None = None

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class ClickIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result_id: Id


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The same id again answers the same batch; none: a new release.
    release_id: Id | None = None


class ResultOut(BaseModel):
    id: str
    rank: int


class SessionOut(BaseModel):
    session_id: str
    query: str
    results: list[ResultOut]
    #: Clicked result ids, in the order they were recorded.
    clicks: list[str]
    irrelevant: bool
    user_id: str | None
    created_at: datetime
    received_at: datetime
    metadata: dict[str, Any] | None
    #: The release that took the session into a batch; null while collected.
    release_id: str | None


class RejectedLine(BaseModel):
    line: int
    detail: str


class BulkOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedLine]


class FeedbackSummary(BaseModel):
    """What is collected and not yet released."""

    sessions: int
    sessions_with_clicks: int
    irrelevant_sessions: int
    clicks: int
    distinct_queries: int
    distinct_documents: int
    #: Sessions with at least one click, over all sessions (0 when there are none).
    click_through_rate: float
    #: The mean rank (1 = first) of each clicked session's first click.
    mean_first_click_rank: float | None
