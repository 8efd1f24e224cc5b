"""Request body limits: 1 MiB for JSON, EMBEDTUNE_MAX_BATCH_BYTES for batch uploads
(EMBEDTUNE_MAX_BATCH_JSON_BYTES when the upload is one JSON body, parsed whole in memory)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedtune.core.errors import render_error


class BodySizeLimit:
    """Answers 413 when a body is larger than its route allows, declared or streamed."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        default_limit: int,
        upload_limit: int,
        upload_paths: frozenset[str],
        json_upload_limit: int | None = None,
    ):
        self.app = app
        self.default_limit = default_limit
        self.upload_limit = upload_limit
        self.upload_paths = upload_paths
        self.json_upload_limit = upload_limit if json_upload_limit is None else json_upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self.default_limit
        detail = f"request body exceeds {limit} bytes"
        if scope["path"].rstrip("/") in self.upload_paths:
            limit = self.upload_limit
            detail = f"request body exceeds {limit} bytes"
            if headers.get(b"content-type", b"").startswith(b"application/json"):
                # A JSON body is parsed whole in memory; a JSONL file streams line by line.
                limit = min(limit, self.json_upload_limit)
                detail = (
                    f"a JSON body may hold at most {limit} bytes; upload larger batches as a "
                    "JSONL file (multipart/form-data, field 'file')"
                )
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            # In the error shape of the path (OpenAI's envelope on /v1/*), like every error.
            response = render_error(scope["path"], 413, detail, "payload_too_large")
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPException from body reading; the handler maps it.
                    raise HTTPException(status_code=413, detail=detail)
            return message

        await self.app(scope, limited_receive, send)
