"""The client side of the event streams: typed events, and a Server-Sent Events reader that
reconnects with ``Last-Event-ID`` so a dropped connection loses nothing.

Used by ``Client.tasks.stream`` / ``AsyncClient.tasks.stream`` (and ``follow``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel

from embedtune.client.errors import error_from
from embedtune.fine_tuning.states import FINISHED, TaskStatus

#: A stream that sends nothing, not even its keep-alive comment, for a minute is dropped
#: (and reconnected).
STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)
#: Reconnections in a row without any event before a stream gives up.
MAX_RECONNECTS = 5


class TaskEvent(BaseModel):
    """A stored event of a task, as the stream sends it (``id`` grows in commit order)."""

    id: int
    task_id: str
    kind: str
    #: The task's status after this event (null for events that tell none).
    status: TaskStatus | None
    detail: dict[str, Any]
    created_at: datetime

    @property
    def terminal(self) -> bool:
        """Whether the task has ended with this event (its stream ends after it)."""
        return self.kind in {status.value for status in FINISHED}


class QueueUpdate(BaseModel):
    """A pending task's place in the queue now (sent on connect and when it moves)."""

    queue_position: int | None
    estimated_start_at: datetime | None
    estimated_finish_at: datetime | None


StreamEvent = TaskEvent | QueueUpdate


@dataclass
class _Decoder:
    """Lines of ``text/event-stream`` in, one event out at each blank line."""

    event: str = ""
    data: list[str] = field(default_factory=list)
    last_id: int | None = None

    def feed(self, line: str) -> StreamEvent | None:
        if line == "":
            event, data = self.event, "\n".join(self.data)
            self.event, self.data = "", []
            if not data:
                return None
            parsed = json.loads(data)
            if event == "queue":
                return QueueUpdate.model_validate(parsed)
            return TaskEvent.model_validate(parsed)
        if line.startswith(":"):
            return None  # a keep-alive comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value
        elif name == "id" and value.isdigit():
            self.last_id = int(value)
        return None


@dataclass
class _Reconnects:
    """What a stream remembers across connections: where it is, whether it is done, and
    the decoder of the current connection. Both readers below only move bytes through it."""

    path: str
    last_id: int | None
    done: bool = False
    failures: int = 0
    #: Whether the current connection brought any event (one that ends empty is the end).
    got_any: bool = False
    decoder: _Decoder = field(default_factory=_Decoder)

    def headers(self) -> dict[str, str]:
        return {} if self.last_id is None else {"Last-Event-ID": str(self.last_id)}

    def connected(self, response: httpx.Response) -> None:
        """Starts reading a connection; raises the API's error for an error answer (whose
        body has been read)."""
        if response.status_code >= 400:
            raise error_from(response)
        self.decoder = _Decoder()
        self.got_any = False

    def take(self, line: str) -> StreamEvent | None:
        """The event that ``line`` completes, if any."""
        event = self.decoder.feed(line)
        if event is None:
            return None
        self.failures = 0
        self.got_any = True
        if isinstance(event, TaskEvent):
            self.last_id = event.id
            self.done = self.done or (event.terminal and self.path.endswith("/stream"))
        return event

    def read(self, lines: Iterable[str]) -> Iterator[StreamEvent]:
        for line in lines:
            if (event := self.take(line)) is not None:
                yield event
            if self.done:
                return

    def closed(self) -> None:
        """The server ended the connection: with nothing more to send, the stream is over."""
        self.done = self.done or not self.got_any

    def failed(self, exc: Exception) -> None:
        self.failures += 1
        if self.failures > MAX_RECONNECTS:
            raise exc


def task_stream_path(task_id: str) -> str:
    return f"/fine-tuning/task/{task_id}/stream"


def sync_events(http: httpx.Client, path: str, last_event_id: int | None) -> Iterator[StreamEvent]:
    """The events of the stream at ``path``, reconnecting after a drop; raises
    ``EmbedtuneAPIError`` for an error answer."""
    state = _Reconnects(path, last_event_id)
    while not state.done:
        try:
            with http.stream(
                "GET", path, headers=state.headers(), timeout=STREAM_TIMEOUT
            ) as response:
                if response.status_code >= 400:
                    response.read()
                state.connected(response)
                yield from state.read(response.iter_lines())
            state.closed()
        except httpx.TransportError as exc:
            state.failed(exc)


async def async_events(
    http: httpx.AsyncClient, path: str, last_event_id: int | None
) -> AsyncIterator[StreamEvent]:
    """:func:`sync_events` over an asynchronous connection."""
    state = _Reconnects(path, last_event_id)
    while not state.done:
        try:
            async with http.stream(
                "GET", path, headers=state.headers(), timeout=STREAM_TIMEOUT
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                state.connected(response)
                async for line in response.aiter_lines():
                    if (event := state.take(line)) is not None:
                        yield event
                    if state.done:
                        return
            state.closed()
        except httpx.TransportError as exc:
            state.failed(exc)
