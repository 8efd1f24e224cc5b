"""The ``AsyncClient`` counterparts of ``sync_methods.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from embedtune.client import calls
from embedtune.client.archive import ScratchArchive, model_archive_path
from embedtune.client.follow import Watch, WithoutStreams
from embedtune.client.stream import StreamEvent, async_events, task_stream_path

if TYPE_CHECKING:
    from embedtune.batches.schemas import BatchOut
    from embedtune.client.aio import AsyncClient
    from embedtune.client.resources import Batches, Feedback, Models, Tasks
    from embedtune.feedback.schemas import BulkOut
    from embedtune.fine_tuning.schemas import TaskOut


async def _moments(events: AsyncIterator[StreamEvent], poll_interval: float) -> AsyncIterator[None]:
    """``sync_methods._moments``, waiting with ``asyncio.sleep``."""
    yield
    with WithoutStreams():
        async for _ in events:
            yield
    while True:
        yield
        await asyncio.sleep(poll_interval)


async def follow(
    tasks: Tasks[AsyncClient],
    task_id: str,
    *,
    poll_interval: float = 1.0,
    timeout: float | None = None,
) -> AsyncIterator[TaskOut]:
    """Yields the task each time its status or progress changes, the finished one last.

    Raises ``TaskWaitTimeout`` when ``timeout`` seconds pass first.
    """
    watch = Watch(timeout)
    async for _ in _moments(tasks.stream(task_id), poll_interval):
        task = await tasks.get(task_id)
        if watch.changed(task):
            yield task
        if watch.finished(task):
            return


def stream(
    tasks: Tasks[AsyncClient], task_id: str, *, last_event_id: int | None = None
) -> AsyncIterator[StreamEvent]:
    """``Tasks.stream`` over an asynchronous connection."""
    return async_events(tasks._client._http, task_stream_path(task_id), last_event_id)


async def wait(
    tasks: Tasks[AsyncClient],
    task_id: str,
    timeout: float | None = None,
    *,
    poll_interval: float = 1.0,
) -> TaskOut:
    """The task once it has finished. Raises ``TaskWaitTimeout``."""
    last = None
    async for task in follow(tasks, task_id, poll_interval=poll_interval, timeout=timeout):
        last = task
    assert last is not None  # follow yields at least once
    return last


async def download(models: Models[AsyncClient], model_id: str, directory: str | Path) -> Path:
    """Downloads and unpacks a model into ``directory``; returns the model's folder."""
    with ScratchArchive() as archive:
        with archive.path.open("wb") as sink:
            await models._client.download_to(model_archive_path(model_id), sink)
        return archive.unpack(directory)


async def upload_batch(
    batches: Batches[AsyncClient], path: str | Path, *, name: str | None = None
) -> BatchOut:
    """Upload a JSONL file from disk."""
    path = Path(path)
    with path.open("rb") as file:
        call = calls.upload_batch(file, filename=path.name, name=name)
        return await batches._client.call(call)


async def upload_feedback(feedback: Feedback[AsyncClient], path: str | Path) -> BulkOut:
    """Upload an NDJSON file of sessions from disk."""
    call = calls.upload_feedback(Path(path).read_bytes(), filename=Path(path).name)
    return await feedback._client.call(call)
