"""The gate in front of every route: ``Authorization: Bearer <key>`` when auth is on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from embedtune.auth.service import AuthMode, KeyState, auth_required, key_matches, key_state
from embedtune.core.db import new_session
from embedtune.core.errors import render_error

logger = logging.getLogger(__name__)


class ActiveKeys:
    """Whether keys exist and the hashes of the active ones, reloaded at most every ``ttl`` s.

    Keys are created and revoked by the CLI in another process, so there is nothing to
    invalidate from here: a short TTL bounds how long a revoked key keeps working while
    sparing the database a query per request.
    """

    def __init__(self, load: Callable[[], KeyState], ttl: float):
        self._load = load
        self._ttl = ttl
        self._state = KeyState(any_key=False, active_hashes=[])
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_database(cls, ttl: float) -> ActiveKeys:
        """Reads the configured database through a session of its own."""

        def load() -> KeyState:
            with new_session() as session:
                return key_state(session)

        return cls(load, ttl)

    def _stale(self) -> bool:
        return self._loaded_at is None or time.monotonic() - self._loaded_at >= self._ttl

    async def get(self) -> KeyState:
        if self._stale():
            async with self._lock:
                if self._stale():
                    self._state = await run_in_threadpool(self._load)
                    self._loaded_at = time.monotonic()
        return self._state


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            header: str = value.decode("latin-1")
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class ApiKeyAuth:
    """Answers 401 ``{"detail", "code"}`` to requests without a valid key when auth is on.

    Paths in ``public_paths`` (health, docs, the dashboard's shell and assets, which hold no
    data and ask for the key) are always served.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        mode: AuthMode,
        keys: ActiveKeys,
        public_paths: frozenset[str],
    ):
        self.app = app
        self.mode = mode
        self.keys = keys
        self.public_paths = public_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.mode == "disabled" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        keys = await self.keys.get()
        if not auth_required(self.mode, keys.any_key):
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        if token is None:
            detail = "missing API key: send 'Authorization: Bearer <key>'"
            await _unauthorized(scope["path"], detail)(scope, receive, send)
            return
        if not key_matches(token, keys.active_hashes):
            logger.info("rejected an invalid API key on %s", scope["path"])
            await _unauthorized(scope["path"], "invalid or revoked API key")(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _unauthorized(path: str, detail: str) -> JSONResponse:
    return render_error(path, 401, detail, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
