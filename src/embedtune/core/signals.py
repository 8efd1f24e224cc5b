"""Wake-ups after a commit: in this process at once and, through Redis pub/sub when the
broker is Redis, in every process on that broker.

A signal is a hint that rows were committed, carrying what a listener needs to decide
whether to look (ids, kinds), never the rows themselves: the listener reads the database,
which stays the truth, and keeps polling it, in case a signal is lost (no Redis, a dropped
connection, a writer that stopped between its commit and its signal).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio
from redis.connection import parse_url

from embedtune.core.config import get_settings

logger = logging.getLogger(__name__)

Listener = Callable[[Any], object]

#: Tells this process's own signals from the others' on the shared channel.
_ORIGIN = uuid.uuid4().hex
#: The longest a writer waits for Redis: its commit is done, the signal is only a hint.
PUBLISH_TIMEOUT_S = 0.5
#: Between attempts to listen again after the connection to Redis failed.
RELISTEN_DELAY_S = 1.0


def _redis_url() -> str | None:
    settings = get_settings()
    return settings.broker_url if settings.broker_kind == "redis" else None


class Signal:
    """One kind of wake-up, named ``name``. Writers ``send`` a JSON notice after they
    commit; each process ``connect``s its listeners and runs ``relay`` to hear the others."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._publishers: dict[str, redis.Redis] = {}

    def connect(self, listener: Listener) -> Callable[[], None]:
        """Calls ``listener(notice)`` for every signal from now on, on the sender's thread
        (or the relay's event loop): it must be quick and thread-safe, and should not raise.
        Returns the function that disconnects it."""
        with self._lock:
            self._listeners.append(listener)

        def disconnect() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return disconnect

    def send(self, notice: Any) -> None:
        """Wakes this process's listeners, then publishes ``notice`` (JSON) to the other
        processes when the broker is Redis. Never raises: a lost signal only delays."""
        self._deliver(notice)
        url = _redis_url()
        if url is None:
            return
        try:
            message = json.dumps({"origin": _ORIGIN, "notice": notice})
            self._publisher(url).publish(_channel(self.name, url), message)
        except (redis.RedisError, OSError, TypeError, ValueError) as error:
            logger.warning("signal %s not published (listeners poll): %s", self.name, error)

    async def relay(self) -> None:
        """Until cancelled, hands the signals that other processes publish to this process's
        listeners; returns at once when the broker is not Redis. Listens again after a
        failure (the listeners poll meanwhile)."""
        url = _redis_url()
        if url is None:
            return
        while True:
            try:
                await self._relay_from(url)
            except (redis.RedisError, OSError) as error:
                logger.warning("listening for %s signals failed (retrying): %s", self.name, error)
            await asyncio.sleep(RELISTEN_DELAY_S)

    async def _relay_from(self, url: str) -> None:
        client = redis.asyncio.Redis.from_url(url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(_channel(self.name, url))
            async for message in pubsub.listen():
                try:
                    body = json.loads(message["data"])
                    origin, notice = body["origin"], body["notice"]
                except (TypeError, ValueError, KeyError):
                    origin, notice = None, None  # not ours to read: wake, the poll sorts it out
                if origin != _ORIGIN:
                    self._deliver(notice)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            await client.aclose()

    def _deliver(self, notice: Any) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(notice)
            except Exception:
                logger.exception("a listener of signal %s failed", self.name)

    def _publisher(self, url: str) -> redis.Redis:
        with self._lock:
            client = self._publishers.get(url)
            if client is None:
                client = self._publishers[url] = redis.Redis.from_url(
                    url,
                    socket_timeout=PUBLISH_TIMEOUT_S,
                    socket_connect_timeout=PUBLISH_TIMEOUT_S,
                )
            return client


@functools.lru_cache(maxsize=16)
def _channel(name: str, url: str) -> str:
    # Pub/sub ignores Redis's database numbers: the number scopes the channel instead, so
    # deployments sharing a Redis server on different databases do not wake each other.
    db = parse_url(url).get("db", 0)  # type: ignore[no-untyped-call]
    return f"embedtune:{name}:db{db}"
