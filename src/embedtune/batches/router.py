"""HTTP routes of training batches."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from embedtune.batches import sample, service
from embedtune.batches.schemas import MAX_JSON_EXAMPLES, BatchCreate, BatchOut, Example
from embedtune.core.db import SessionDep, unit_of_work
from embedtune.core.errors import EmbedtuneError, Unprocessable, error_responses
from embedtune.core.pagination import TOTAL_COUNT_HEADER, PageDep, set_total
from embedtune.core.path_params import ShortId
from embedtune.core.wire import text_problem

router = APIRouter(prefix="/batches", tags=["batches"])

_UPLOAD_SCHEMA: dict[str, Any] = {
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
                            "description": "JSONL, one example a line",
                        },
                        "name": {"type": "string", "maxLength": 255},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["examples"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 255},
                        "examples": {
                            "type": "array",
                            "items": Example.model_json_schema(),
                            "maxItems": MAX_JSON_EXAMPLES,
                        },
                    },
                }
            },
        },
    }
}


async def _create_from_form(request: Request, session: SessionDep) -> Any:
    form = await request.form(max_files=1, max_fields=2)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Unprocessable(
                "multipart field 'file' (a JSONL file) is required", code="validation_error"
            )
        name_field = form.get("name")
        name = (
            name_field if isinstance(name_field, str) and name_field else upload.filename or "batch"
        )[:255]
        if (problem := text_problem(name)) is not None:
            raise Unprocessable(f"name: {problem}", code="validation_error")
        return await run_in_threadpool(
            unit_of_work(service.create_from_jsonl), session, name, upload.file
        )
    finally:
        await form.close()


async def _create_from_json(request: Request, session: SessionDep) -> Any:
    try:
        body = BatchCreate.model_validate(service.parse_json(await request.body()))
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise Unprocessable(detail, code="validation_error") from exc
    except ValueError as exc:
        raise Unprocessable(str(exc), code="validation_error") from exc
    return await run_in_threadpool(
        unit_of_work(service.create_from_examples), session, body.name, body.examples
    )


@router.post(
    "",
    status_code=201,
    response_model=BatchOut,
    openapi_extra=_UPLOAD_SCHEMA,
    responses=error_responses(413, 415, 422),
)
async def create_batch(request: Request, session: SessionDep, response: Response) -> BatchOut:
    """Upload training examples: a JSONL file (multipart) or a JSON body.

    Each example is ``{"query", "positive", "negative"?}``; see the ``Example`` schema.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        batch = await _create_from_form(request, session)
    elif content_type.startswith("application/json"):
        batch = await _create_from_json(request, session)
    else:
        raise EmbedtuneError(
            "send multipart/form-data with a 'file' field, or application/json",
            code="unsupported_media_type",
            status_code=415,
        )
    response.headers["Location"] = f"/batches/{batch.id}"
    return BatchOut.model_validate(batch)


@router.get(
    "",
    response_model=list[BatchOut],
    responses={
        200: {"headers": {TOTAL_COUNT_HEADER: {"schema": {"type": "integer"}}}},
        **error_responses(422),
    },
)
def list_batches(session: SessionDep, page: PageDep, response: Response) -> list[BatchOut]:
    """Batches, newest first."""
    batches, total = service.list_batches(session, page.offset, page.limit)
    set_total(response, total)
    return [BatchOut.model_validate(batch) for batch in batches]


@router.get(
    "/sample",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSONL"}},
)
def get_sample_batch() -> Response:
    """A sample batch to try the service with: 400 real query → document pairs from Python's
    standard library documentation (a docstring's summary line → the rest of it), as JSONL
    ready for ``POST /batches``."""
    return Response(
        sample.read_sample(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="sample.jsonl"'},
    )


@router.get("/{batch_id}", response_model=BatchOut, responses=error_responses(404))
def get_batch(batch_id: ShortId, session: SessionDep) -> BatchOut:
    return BatchOut.model_validate(service.get_batch(session, batch_id))
