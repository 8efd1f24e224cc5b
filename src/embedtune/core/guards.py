"""The outermost layers of the API: every unexpected exception becomes a clean JSON 500,
and URLs carrying NUL characters are answered before any route sees them."""

from __future__ import annotations

import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedtune.core.errors import render_error

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
#: A client's request id is kept only if it is short and plain (it goes into the logs).
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-ID`` if it is a plain token, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _CLIENT_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class CatchUnexpected:
    """Turns any exception that escaped the routes and the inner middleware into one
    ``{"detail", "code": "internal_error"}`` 500, logged with the request id.

    A pure ASGI layer added last, so it sits inside Starlette's ServerErrorMiddleware and
    that middleware never sees the exception: ServerErrorMiddleware re-raises after its
    handler, and uvicorn then drops the keep-alive connection without a word. Here the
    response is sent whole and the call returns normally, so the connection stays usable.
    If the response had already started, it cannot be replaced: the error propagates and
    the server ends the connection, the only honest end for a half-sent response.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            rid = request_id(scope)
            logger.exception(
                "unhandled error on %s %s request_id=%s", scope["method"], scope["path"], rid
            )
            if started:
                raise
            response = render_error(scope["path"], 500, "internal error", "internal_error")
            response.headers[REQUEST_ID_HEADER] = rid
            await response(scope, receive, send)


class RejectNulInUrl:
    """A NUL character can name no resource and no database can store it: 404 when it is
    in the path (an id), 422 when it is in the query string."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if "\x00" in scope["path"]:
                await render_error(scope["path"], 404, "not found", "not_found")(
                    scope, receive, send
                )
                return
            if b"%00" in scope.get("query_string", b""):
                detail = "query parameters must not contain NUL characters"
                await render_error(scope["path"], 422, detail, "validation_error")(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)
