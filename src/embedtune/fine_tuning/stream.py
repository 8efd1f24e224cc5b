"""Server-Sent Events of task events: one reader per API process, fanned out to its streams.

The journal gives every event an id in commit order (see :mod:`journal`), so "the events
after id N" is exact, in any process: a stream first replays from the database what came
after the client's ``Last-Event-ID``, then follows what the process's :class:`EventHub`
reads. The hub reads the new events of all tasks with one query per poll, however many
streams are open; events written by workers on other machines arrive the same way.

The hub reads at once when a commit signals events that one of its streams wants
(:data:`journal.COMMITTED`: directly from writers in this process, through Redis from the
others), and every ``stream_poll_interval`` in any case: a lost signal only delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sse_starlette import ServerSentEvent

from embedtune.core.config import Settings
from embedtune.core.db import new_session
from embedtune.core.signals import Signal
from embedtune.fine_tuning import estimates, journal, repository
from embedtune.fine_tuning.states import STATUS_AFTER, TERMINAL_EVENTS, EventKind, TaskStatus
from embedtune.fine_tuning.tables import TaskEvent

logger = logging.getLogger(__name__)

#: Events read per query (a replay or a busy poll reads in pages of this).
PAGE = 500
#: The status a task has during events that do not move it.
_STATUS_DURING = {
    EventKind.dispatched: TaskStatus.pending,
    EventKind.dispatch_failed: TaskStatus.pending,
    EventKind.progress: TaskStatus.processing,
    EventKind.evaluated: TaskStatus.processing,
    EventKind.checkpoint_saved: TaskStatus.processing,
    EventKind.deployment: TaskStatus.completed,
}
#: Events that move the pending tasks behind a task up the queue (a new or re-sent task
#: joins at the end: it moves nobody).
_QUEUE_MOVES = frozenset({EventKind.claimed.value, EventKind.canceled.value})


def _status_of(kind_name: str) -> str | None:
    """The status a task has after (or during) an event of this kind."""
    kind = EventKind(kind_name) if kind_name in EventKind.__members__ else None
    status = STATUS_AFTER.get(kind) or _STATUS_DURING.get(kind) if kind else None
    return status.value if status else None


def event_data(event: TaskEvent) -> dict[str, Any]:
    """The JSON of one stream event (and of one history entry)."""
    return {
        "id": event.id,
        "task_id": event.task_id,
        "kind": event.kind,
        "status": _status_of(event.kind),
        "detail": event.detail,
        "created_at": event.created_at.isoformat(),
    }


def _read_after(after: int, task_ids: Collection[str] | None = None) -> list[dict[str, Any]]:
    query = select(TaskEvent).where(TaskEvent.id > after)
    if task_ids is not None:
        query = query.where(TaskEvent.task_id.in_(list(task_ids)))
    with new_session() as session:
        return [
            event_data(event) for event in session.scalars(query.order_by(TaskEvent.id).limit(PAGE))
        ]


def _last_id() -> int:
    with new_session() as session:
        return int(session.scalar(select(func.coalesce(func.max(TaskEvent.id), 0))) or 0)


@dataclass(eq=False)
class Subscription:
    matches: Callable[[dict[str, Any]], bool]
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)


class EventHub:
    """Reads the journal for new events while streams are open, when ``signal`` says some
    committed and every ``poll_interval``, and hands each to the streams it matches. One per
    API process (``app.state.event_hub``)."""

    def __init__(self, poll_interval: float, signal: Signal = journal.COMMITTED) -> None:
        self._poll_interval = poll_interval
        self._signal = signal
        self._subscriptions: set[Subscription] = set()
        self._cursor: int | None = None
        self._wake = asyncio.Event()
        self._starting = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._relay: asyncio.Task[None] | None = None
        self._disconnect: Callable[[], None] | None = None

    async def subscribe(self, matches: Callable[[dict[str, Any]], bool]) -> Subscription:
        """From when this returns, every new event that ``matches`` is queued for it; what
        committed before is in the database, for the caller to replay."""
        subscription = Subscription(matches)
        self._subscriptions.add(subscription)
        async with self._starting:
            if self._cursor is None:
                self._cursor = await run_in_threadpool(_last_id)
        if self._task is None or self._task.done():
            self._start(asyncio.get_running_loop())
        self._wake.set()
        return subscription

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._run())
        if self._disconnect is None:
            self._disconnect = self._signal.connect(
                lambda notice: loop.call_soon_threadsafe(self._signaled, notice)
            )
            self._relay = loop.create_task(self._signal.relay())

    def _signaled(self, notice: Any) -> None:
        """On the loop: events committed; read them now if a stream may want one."""
        try:
            hints = [
                {
                    "task_id": item["task_id"],
                    "kind": item["kind"],
                    "status": _status_of(item["kind"]),
                }
                for item in notice
            ]
        except (TypeError, KeyError):
            hints = None  # a notice of another version: read, the journal tells
        if hints is None or any(
            subscription.matches(hint) for hint in hints for subscription in self._subscriptions
        ):
            self._wake.set()

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    async def close(self) -> None:
        if self._disconnect is not None:
            self._disconnect()
            self._disconnect = None
        for task in (self._task, self._relay):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        while True:
            if not self._subscriptions:
                # Idle: no query until a stream opens; the next one reads from the end then.
                self._cursor = None
                self._wake.clear()
                await self._wake.wait()
                continue
            self._wake.clear()  # a signal from now on calls for another read
            try:
                await self._poll()
            except Exception:
                logger.exception("reading task events for the streams failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def _poll(self) -> None:
        while self._cursor is not None:
            events = await run_in_threadpool(_read_after, self._cursor)
            for data in events:
                for subscription in list(self._subscriptions):
                    if subscription.matches(data):
                        subscription.queue.put_nowait(data)
            if events:
                self._cursor = events[-1]["id"]
            if len(events) < PAGE:
                return


def _sse(data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(data, separators=(",", ":")), id=str(data["id"]))


def _queue_event(estimate: estimates.Estimate) -> ServerSentEvent:
    """Not stored and without an id: the task's place in the queue as of now."""
    body = {
        key: value.isoformat() if hasattr(value, "isoformat") else value
        for key, value in estimate.as_update().items()
    }
    return ServerSentEvent(json.dumps(body, separators=(",", ":")), event="queue")


def _estimate_now(task_id: str, settings: Settings) -> estimates.Estimate | None:
    with new_session() as session:
        task = repository.get(session, task_id)
        if task is None or task.status != TaskStatus.pending:
            return None
        return estimates.estimate(session, [task], settings).get(task_id)


def _task_status(task_id: str) -> str | None:
    with new_session() as session:
        task = repository.get(session, task_id)
        return task.status if task is not None else None


async def task_stream(
    hub: EventHub, task_id: str, last_event_id: int | None, settings: Settings
) -> AsyncIterator[ServerSentEvent]:
    """The events of one task after ``last_event_id`` (all without it), then live ones;
    ends after a terminal event (completed, failed, canceled)."""
    # Other tasks' claims and cancels are read too: they move this one up the queue.
    subscription = await hub.subscribe(
        lambda data: data["task_id"] == task_id or data["kind"] in _QUEUE_MOVES
    )
    try:
        sent = last_event_id or 0
        status: str | None = None
        while True:  # replay, in pages
            events = await run_in_threadpool(_read_after, sent, (task_id,))
            for data in events:
                yield _sse(data)
                sent = data["id"]
                status = data["status"] or status
            if len(events) < PAGE:
                break
        if status is None:
            status = await run_in_threadpool(_task_status, task_id)
        if status in {
            s.value for s in (TaskStatus.completed, TaskStatus.failed, TaskStatus.canceled)
        }:
            return
        pending = status in (None, TaskStatus.pending.value)
        queue_moved = True
        while True:
            # Once per burst: only when every event that came meanwhile has been read.
            if queue_moved and pending and subscription.queue.empty():
                estimate = await run_in_threadpool(_estimate_now, task_id, settings)
                if estimate is not None:
                    yield _queue_event(estimate)
                queue_moved = False
            data = await subscription.queue.get()
            if data["task_id"] != task_id:
                queue_moved = True
                continue
            if data["id"] <= sent:
                continue  # already replayed
            yield _sse(data)
            sent = data["id"]
            if EventKind(data["kind"]) in TERMINAL_EVENTS:
                return
            pending = (data["status"] or status) == TaskStatus.pending.value
            status = data["status"] or status
            queue_moved = True
    finally:
        hub.unsubscribe(subscription)


async def all_tasks_stream(
    hub: EventHub,
    last_event_id: int | None,
    task_ids: Collection[str] | None,
    statuses: Collection[str] | None,
) -> AsyncIterator[ServerSentEvent]:
    """The events of every task (or of ``task_ids``; with ``statuses``, only the events that
    leave a task in one of them), after ``last_event_id`` if given; never ends."""

    def matches(data: dict[str, Any]) -> bool:
        return (task_ids is None or data["task_id"] in task_ids) and (
            statuses is None or data["status"] in statuses
        )

    subscription = await hub.subscribe(matches)
    try:
        sent = 0
        if last_event_id is not None:
            sent = last_event_id
            while True:
                events = await run_in_threadpool(_read_after, sent, task_ids)
                for data in events:
                    if matches(data):
                        yield _sse(data)
                    sent = data["id"]
                if len(events) < PAGE:
                    break
        while True:
            data = await subscription.queue.get()
            if data["id"] > sent:
                yield _sse(data)
                sent = data["id"]
    finally:
        hub.unsubscribe(subscription)
