"""The one error family of the API and the handlers that turn it into JSON."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class ErrorOut(BaseModel):
    detail: str
    code: str


class EmbedtuneError(Exception):
    """An error with a stable machine-readable ``code`` and an HTTP status."""

    status_code: int = 400
    code: str = "bad_request"
    #: The request field at fault, where one is (OpenAI's error envelope names it).
    param: str | None = None

    def __init__(self, detail: str, *, code: str | None = None, status_code: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code


class NotFound(EmbedtuneError):
    status_code = 404
    code = "not_found"


class InvalidState(EmbedtuneError):
    status_code = 409
    code = "invalid_state"


class Unprocessable(EmbedtuneError):
    status_code = 422
    code = "unprocessable"


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"


def error_body(detail: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, "code": code, **extra}


#: Renders an error for a family of paths: (status, detail, code, extra fields) → body.
ErrorFormat = Callable[[int, str, str, Mapping[str, Any]], dict[str, Any]]
#: Path prefix → the error shape of the routes under it (``/v1/`` speaks OpenAI's).
_error_formats: dict[str, ErrorFormat] = {}


def register_error_format(path_prefix: str, render: ErrorFormat) -> None:
    """Errors on paths under ``path_prefix`` take ``render``'s shape (set once at start)."""
    _error_formats[path_prefix] = render


def render_error(
    path: str,
    status_code: int,
    detail: str,
    code: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """The error response for ``path``: ``{"detail", "code"}`` unless a format is registered."""
    for prefix, render in _error_formats.items():
        if path.startswith(prefix):
            body = render(status_code, detail, code, extra)
            return JSONResponse(body, status_code=status_code, headers=headers)
    return JSONResponse(error_body(detail, code, **extra), status_code=status_code, headers=headers)


def _validation_detail(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else error["msg"])
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the API as ``{"detail", "code"}``, validation errors included."""

    @app.exception_handler(EmbedtuneError)
    async def embedtune_error(request: Request, exc: EmbedtuneError) -> JSONResponse:
        extra: dict[str, Any] = {"param": exc.param} if exc.param else {}
        return render_error(request.url.path, exc.status_code, exc.detail, exc.code, **extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        detail = _validation_detail(errors)
        return render_error(request.url.path, 422, detail, "validation_error", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return render_error(
            request.url.path, exc.status_code, str(exc.detail), code, headers=exc.headers
        )


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the error codes a route can answer."""
    descriptions = {
        400: "Bad request",
        401: "Missing or invalid API key",
        404: "Not found",
        409: "Conflict with the current state",
        413: "Payload too large",
        415: "Unsupported media type",
        422: "Invalid input",
    }
    return {
        code: {"model": ErrorOut, "description": descriptions.get(code, "Error")}
        for code in status_codes
    }
