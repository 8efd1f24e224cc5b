"""The resource methods of ``Client`` that are more than one call: following a task,
uploads from disk and model downloads. ``async_methods.py`` holds their ``AsyncClient``
counterparts; the decisions they share are in ``follow.py`` and ``archive.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from embedtune.client import calls
from embedtune.client.archive import ScratchArchive, model_archive_path
from embedtune.client.follow import Watch, WithoutStreams
from embedtune.client.stream import StreamEvent, sync_events, task_stream_path

if TYPE_CHECKING:
    from embedtune.batches.schemas import BatchOut
    from embedtune.client.resources import Batches, Feedback, Models, Tasks
    from embedtune.client.sync import Client
    from embedtune.feedback.schemas import BulkOut
    from embedtune.fine_tuning.schemas import TaskOut


def _moments(events: Iterator[StreamEvent], poll_interval: float) -> Iterator[None]:
    """When ``follow`` reads the task: now, after each event of its stream, then (a server
    without streams, or one that ended the stream early) every ``poll_interval`` seconds."""
    yield
    with WithoutStreams():
        for _ in events:
            yield
    while True:
        yield
        time.sleep(poll_interval)


def follow(
    tasks: Tasks[Client], task_id: str, *, poll_interval: float = 1.0, timeout: float | None = None
) -> Iterator[TaskOut]:
    """Yields the task each time its status or progress changes, the finished one last.

    Raises ``TaskWaitTimeout`` when ``timeout`` seconds pass first.
    """
    watch = Watch(timeout)
    for _ in _moments(tasks.stream(task_id), poll_interval):
        task = tasks.get(task_id)
        if watch.changed(task):
            yield task
        if watch.finished(task):
            return


def stream(
    tasks: Tasks[Client], task_id: str, *, last_event_id: int | None = None
) -> Iterator[StreamEvent]:
    """The task's events as they happen (after ``last_event_id``, else all of them):
    ``TaskEvent`` for stored events, ``QueueUpdate`` for its place in the queue. Ends
    after the terminal event; reconnects with ``Last-Event-ID`` if the connection drops.
    """
    return sync_events(tasks._client._http, task_stream_path(task_id), last_event_id)


def wait(
    tasks: Tasks[Client], task_id: str, timeout: float | None = None, *, poll_interval: float = 1.0
) -> TaskOut:
    """The task once it has finished. Raises ``TaskWaitTimeout``."""
    *_, task = follow(tasks, task_id, poll_interval=poll_interval, timeout=timeout)
    return task


def download(models: Models[Client], model_id: str, directory: str | Path) -> Path:
    """Downloads and unpacks a model into ``directory``; returns the model's folder."""
    with ScratchArchive() as archive:
        with archive.path.open("wb") as sink:
            models._client.download_to(model_archive_path(model_id), sink)
        return archive.unpack(directory)


def upload_batch(
    batches: Batches[Client], path: str | Path, *, name: str | None = None
) -> BatchOut:
    """Upload a JSONL file from disk."""
    path = Path(path)
    with path.open("rb") as file:
        return batches._client.call(calls.upload_batch(file, filename=path.name, name=name))


def upload_feedback(feedback: Feedback[Client], path: str | Path) -> BulkOut:
    """Upload an NDJSON file of sessions from disk."""
    path = Path(path)
    return feedback._client.call(calls.upload_feedback(path.read_bytes(), filename=path.name))
