"""The one error family of the API and the handlers that turn it into JSON."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
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


def _validation_detail(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{location}: {error.get('msg', 'invalid')}" if location else error["msg"])
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the API as ``{"detail", "code"}``, validation errors included."""

    @app.exception_handler(EmbedtuneError)
    async def embedtune_error(_: Request, exc: EmbedtuneError) -> JSONResponse:
        return JSONResponse(error_body(exc.detail, exc.code), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        body = error_body(_validation_detail(errors), "validation_error", errors=errors)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers
        )


def render_error(request: Request, status_code: int, detail: str, code: str) -> Response:
    """The response of an error no handler above shaped (``embedtune.guards``): the one
    place where a path's own error shape for unexpected errors goes."""
    return JSONResponse(error_body(detail, code), status_code=status_code)


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
