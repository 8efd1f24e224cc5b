"""HTTP routes of the event streams (Server-Sent Events)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from sse_starlette import EventSourceResponse

from embedtune.core.config import SettingsDep
from embedtune.core.db import SessionDep
from embedtune.core.errors import Unprocessable, error_responses
from embedtune.fine_tuning import service
from embedtune.fine_tuning.states import TaskStatus
from embedtune.fine_tuning.stream import EventHub, all_tasks_stream, task_stream

router = APIRouter(tags=["fine-tuning"])

_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: `id:` (increasing) and JSON `data:` "
        "`{id, task_id, kind, status, detail, created_at}`; `event: queue` (no id) carries "
        "`queue_position` and the estimates of a pending task",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


#: The largest event id: the column is a 32-bit INTEGER on PostgreSQL, which answers a
#: larger bound with an error rather than no rows.
MAX_EVENT_ID = 2**31 - 1


def _last_event_id(header: str | None, query: int | None) -> int | None:
    if header is None or header == "":
        return query
    try:
        value = int(header)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_EVENT_ID:
        raise Unprocessable(
            f"Last-Event-ID must be an event id (an integer from 0 to {MAX_EVENT_ID})",
            code="validation_error",
        )
    return value


def _hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.event_hub
    return hub


LastEventIdHeader = Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)]
LastEventIdQuery = Annotated[
    int | None,
    Query(ge=0, le=MAX_EVENT_ID, description="For clients that cannot send Last-Event-ID"),
]


@router.get(
    "/fine-tuning/task/{task_id}/stream",
    response_class=EventSourceResponse,
    responses={**_STREAM_RESPONSE, **error_responses(404, 422)},
)
async def stream_task(
    task_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
) -> EventSourceResponse:
    """The task's events as they happen: every state change and progress update. With
    ``Last-Event-ID``, exactly the events after it; ends after the terminal event."""
    after = _last_event_id(last_event_id_header, last_event_id)
    await run_in_threadpool(service.get_task, session, task_id)
    return EventSourceResponse(
        task_stream(_hub(request), task_id, after, settings),
        ping=settings.stream_ping_interval,
    )


@router.get(
    "/events/stream",
    response_class=EventSourceResponse,
    responses={**_STREAM_RESPONSE, **error_responses(422)},
)
async def stream_events(
    request: Request,
    settings: SettingsDep,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: LastEventIdQuery = None,
    task_id: Annotated[list[str] | None, Query(max_length=100, description="Repeatable")] = None,
    status: Annotated[
        list[TaskStatus] | None, Query(description="Only events that leave a task so")
    ] = None,
) -> EventSourceResponse:
    """The events of every task (or of the given ones), as they happen."""
    after = _last_event_id(last_event_id_header, last_event_id)
    statuses = {s.value for s in status} if status else None
    return EventSourceResponse(
        all_tasks_stream(_hub(request), after, set(task_id) if task_id else None, statuses),
        ping=settings.stream_ping_interval,
    )
