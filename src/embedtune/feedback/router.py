"""HTTP routes of search feedback."""

from __future__ import annotations

import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from embedtune.batches.schemas import BatchOut
from embedtune.core.db import SessionDep, transaction
from embedtune.core.errors import EmbedtuneError, Unprocessable, error_responses
from embedtune.core.pagination import TOTAL_COUNT_HEADER, PageDep, set_total
from embedtune.feedback import ingest, service
from embedtune.feedback.schemas import (
    BulkOut,
    ClickIn,
    FeedbackSummary,
    ReleaseIn,
    SessionIn,
    SessionOut,
)

router = APIRouter(prefix="/feedback", tags=["feedback"])

BULK_PATH = "/feedback/sessions/bulk"
#: A raw NDJSON body is kept in memory up to this size, then on disk.
_SPOOL_BYTES = 8 * 1024 * 1024
_BULK_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "NDJSON, one session object a line",
                        }
                    },
                }
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one session object a line"}
            },
        },
    }
}


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionOut,
    responses={200: {"model": SessionOut, "description": "Replay"}, **error_responses(422)},
)
def create_session(body: SessionIn, session: SessionDep, response: Response) -> SessionOut:
    """Store one search session; the same ``session_id`` and body again answers 200."""
    with transaction(session):
        stored, created = ingest.create_session(session, body)
    if not created:
        response.status_code = 200
    return stored


async def _bulk_from_form(request: Request, session: SessionDep) -> BulkOut:
    form = await request.form(max_files=1, max_fields=1)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Unprocessable(
                "multipart field 'file' (an NDJSON file) is required", code="validation_error"
            )
        return await run_in_threadpool(ingest.ingest_ndjson, session, upload.file)
    finally:
        await form.close()


async def _bulk_from_body(request: Request, session: SessionDep) -> BulkOut:
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        async for part in request.stream():
            spool.write(part)
        spool.seek(0)
        return await run_in_threadpool(ingest.ingest_ndjson, session, spool)


@router.post(
    "/sessions/bulk",
    response_model=BulkOut,
    openapi_extra=_BULK_SCHEMA,
    responses=error_responses(413, 415, 422),
)
async def bulk_upload(request: Request, session: SessionDep) -> BulkOut:
    """Store many sessions from NDJSON (multipart ``file`` or a raw body): good lines are
    stored, bad ones listed; a replay stores nothing twice."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _bulk_from_form(request, session)
    if content_type.startswith(("application/x-ndjson", "application/jsonl")):
        return await _bulk_from_body(request, session)
    raise EmbedtuneError(
        "send multipart/form-data with a 'file' field, or an application/x-ndjson body",
        code="unsupported_media_type",
        status_code=415,
    )


@router.get(
    "/sessions",
    response_model=list[SessionOut],
    responses={
        200: {"headers": {TOTAL_COUNT_HEADER: {"schema": {"type": "integer"}}}},
        **error_responses(422),
    },
)
def list_sessions(session: SessionDep, page: PageDep, response: Response) -> list[SessionOut]:
    """Sessions, newest first, with their clicks."""
    sessions, total = service.list_sessions(session, page.offset, page.limit)
    set_total(response, total)
    return sessions


@router.get("/sessions/{session_id}", response_model=SessionOut, responses=error_responses(404))
def get_session(session_id: str, session: SessionDep) -> SessionOut:
    return service.get_session(session, session_id)


@router.post(
    "/sessions/{session_id}/clicks",
    response_model=SessionOut,
    responses=error_responses(404, 409, 422),
)
def add_click(session_id: str, body: ClickIn, session: SessionDep) -> SessionOut:
    """A click that came after the session; the same click twice is recorded once."""
    with transaction(session):
        return service.add_click(session, session_id, body.result_id)


@router.put(
    "/sessions/{session_id}/irrelevant",
    response_model=SessionOut,
    responses=error_responses(404, 409),
)
def mark_irrelevant(session_id: str, session: SessionDep) -> SessionOut:
    """The user said nothing shown was relevant: the session gives no training pairs."""
    with transaction(session):
        return service.mark_irrelevant(session, session_id)


@router.get("", response_model=FeedbackSummary)
def feedback_summary(session: SessionDep) -> FeedbackSummary:
    """What is collected and not yet released."""
    return service.summary(session)


@router.post(
    "/release",
    status_code=201,
    response_model=BatchOut,
    responses={200: {"model": BatchOut, "description": "Replay"}, **error_responses(422)},
)
def release(
    session: SessionDep, response: Response, body: Annotated[ReleaseIn | None, Body()] = None
) -> BatchOut:
    """Turn the feedback collected since the last release into a training batch
    (``source: "feedback"``); the same ``release_id`` again answers the same batch."""
    with transaction(session):
        batch, created = service.release(session, body.release_id if body else None)
    if not created:
        response.status_code = 200
    return BatchOut.model_validate(batch)
