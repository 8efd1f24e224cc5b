"""The Python client of the embedtune API: ``Client`` and ``AsyncClient``.

>>> client = Client("http://127.0.0.1:8000", api_key="et_...")
>>> task = client.tasks.create("all-MiniLM-L6-v2", batch_id=batch.id)
>>> client.tasks.wait(task.id, timeout=3600).status
<TaskStatus.completed: 'completed'>

Every method returns the pydantic model the server itself answers with. Errors of the API
raise ``EmbedtuneAPIError`` (``status``, ``code``, ``detail``); a server that cannot be
reached raises ``EmbedtuneConnectionError``. Each request is described once, as an
``APICall``, and the two clients only differ in how they send it.
"""

from __future__ import annotations

import asyncio
import os
import random
import tarfile
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Concatenate, Generic, ParamSpec, Self, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from embedtune.batches.schemas import BatchOut
from embedtune.deployments.schemas import DeploymentsOut, EmbeddingsResponse
from embedtune.feedback.schemas import BulkOut, FeedbackSummary, SessionOut
from embedtune.fine_tuning.schemas import TaskEventOut, TaskMetricsOut, TaskOut
from embedtune.fine_tuning.states import FINISHED
from embedtune.models.schemas import ModelOut
from embedtune.sse_client import (
    QueueUpdate,
    StreamEvent,
    TaskEvent,
    async_events,
    sync_events,
    task_stream_path,
)

__all__ = ["AsyncClient", "Client", "QueueUpdate", "StreamEvent", "TaskEvent"]

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 60.0
TOTAL_COUNT_HEADER = "X-Total-Count"

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
P = ParamSpec("P")


class EmbedtuneClientError(Exception):
    """Base of every error this module raises."""


class EmbedtuneAPIError(EmbedtuneClientError):
    """The API answered with an error: ``status`` (HTTP), ``code`` and ``detail``."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(f"{detail} ({code}, HTTP {status})")
        self.status = status
        self.code = code
        self.detail = detail


class EmbedtuneConnectionError(EmbedtuneClientError):
    """The server could not be reached, even after the retries."""


class TaskWaitTimeout(EmbedtuneClientError, TimeoutError):
    """A task did not finish within the time given to ``wait``."""


class Page(list[T]):
    """One page of a collection; ``total`` is the size of the whole collection."""

    def __init__(self, items: list[T], total: int):
        super().__init__(items)
        self.total = total


@dataclass(frozen=True)
class APICall(Generic[T]):
    """One request of the API and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | list[tuple[str, Any]] | None = None
    json: Any = None
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Safe to send again after a dropped connection or a 5xx (reads, keyed creates).
    retry: bool = False

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` besides method and path."""
        return {
            "params": self.params,
            "json": self.json,
            "files": self.files,
            "data": self.data,
            "headers": self.headers,
        }


def _one(model: type[M]) -> Callable[[httpx.Response], M]:
    # by_name: the server's models validate ORM attributes (``metadata_``) by alias.
    return lambda response: model.model_validate(response.json(), by_name=True)


def _many(model: type[M]) -> Callable[[httpx.Response], list[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    return lambda response: adapter.validate_python(response.json(), by_name=True)


def _page(model: type[M]) -> Callable[[httpx.Response], Page[M]]:
    items = _many(model)
    return lambda response: Page(items(response), int(response.headers[TOTAL_COUNT_HEADER]))


def _error_from(response: httpx.Response) -> EmbedtuneAPIError:
    try:
        body = response.json()
        if isinstance(body.get("error"), dict):  # /v1/* answers in OpenAI's envelope
            error = body["error"]
            return EmbedtuneAPIError(response.status_code, str(error["code"]), error["message"])
        return EmbedtuneAPIError(response.status_code, str(body["code"]), str(body["detail"]))
    except (ValueError, KeyError, TypeError):
        detail = response.text.strip()[:200] or response.reason_phrase
        return EmbedtuneAPIError(response.status_code, "http_error", detail)


# ---- the calls, described once ----------------------------------------------------------


def create_task(
    embedding_model_id: str,
    *,
    batch_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    deploy_as_blue: bool = False,
    wait_on_conflict: bool = False,
    idempotency_key: str | None = None,
) -> APICall[TaskOut]:
    """Create a fine-tuning task; sent again after a failure, it still makes one task.

    The ``Idempotency-Key`` is generated unless given.
    """
    body: dict[str, Any] = {
        "embedding_model_id": embedding_model_id,
        "deploy_as_blue": deploy_as_blue,
        "wait_on_conflict": wait_on_conflict,
    }
    if batch_id is not None:
        body["batch_id"] = batch_id
    if metadata is not None:
        body["metadata"] = metadata
    key = idempotency_key or uuid.uuid4().hex
    return APICall(
        "POST",
        "/fine-tuning/task",
        _one(TaskOut),
        json=body,
        headers={"Idempotency-Key": key},
        retry=True,
    )


def list_tasks(
    *, status: list[str] | None = None, offset: int = 0, limit: int = 100
) -> APICall[Page[TaskOut]]:
    """Tasks, newest first, optionally only those in the given statuses."""
    params = [("offset", offset), ("limit", limit), *(("status", s) for s in status or [])]
    return APICall("GET", "/fine-tuning/task", _page(TaskOut), params=params, retry=True)


def get_task(task_id: str) -> APICall[TaskOut]:
    """One task."""
    return APICall("GET", f"/fine-tuning/task/{task_id}", _one(TaskOut), retry=True)


def cancel_task(task_id: str) -> APICall[TaskOut]:
    """Cancel a pending or processing task (409 once it has finished otherwise)."""
    return APICall("PUT", f"/fine-tuning/task/{task_id}/cancel", _one(TaskOut))


def restart_task(task_id: str) -> APICall[TaskOut]:
    """Run a failed, canceled or stuck pending task again, from scratch."""
    return APICall("PUT", f"/fine-tuning/task/{task_id}/restart", _one(TaskOut))


def list_task_events(task_id: str) -> APICall[list[TaskEventOut]]:
    """The task's history, oldest first."""
    path = f"/fine-tuning/task/{task_id}/events"
    return APICall("GET", path, _many(TaskEventOut), retry=True)


def get_task_metrics(task_id: str) -> APICall[TaskMetricsOut]:
    """Held-out evaluation before and after training, and the loss curve."""
    path = f"/fine-tuning/task/{task_id}/metrics"
    return APICall("GET", path, _one(TaskMetricsOut), retry=True)


def list_models(*, offset: int = 0, limit: int = 100) -> APICall[Page[ModelOut]]:
    """Registered models, newest first."""
    params = {"offset": offset, "limit": limit}
    return APICall("GET", "/models", _page(ModelOut), params=params, retry=True)


def get_model(model_id: str) -> APICall[ModelOut]:
    """One registered model."""
    return APICall("GET", f"/models/{model_id}", _one(ModelOut), retry=True)


def register_model(
    name: str, path: str, *, model_id: str | None = None, plugin: str | None = None
) -> APICall[ModelOut]:
    """Register a model directory that exists on the server."""
    body: dict[str, Any] = {"name": name, "path": path}
    if model_id is not None:
        body["id"] = model_id
    if plugin is not None:
        body["plugin"] = plugin
    return APICall("POST", "/models", _one(ModelOut), json=body)


def upload_batch(file: IO[bytes], *, filename: str, name: str | None = None) -> APICall[BatchOut]:
    """Upload a JSONL file of ``{"query", "positive", "negative"?}`` lines."""
    data = {"name": name} if name else None
    files = {"file": (filename, file, "application/x-ndjson")}
    return APICall("POST", "/batches", _one(BatchOut), files=files, data=data)


def create_batch(examples: list[dict[str, Any]], *, name: str | None = None) -> APICall[BatchOut]:
    """Create a batch from examples given in memory."""
    body: dict[str, Any] = {"examples": examples}
    if name is not None:
        body["name"] = name
    return APICall("POST", "/batches", _one(BatchOut), json=body)


def list_batches(*, offset: int = 0, limit: int = 100) -> APICall[Page[BatchOut]]:
    """Batches, newest first."""
    params = {"offset": offset, "limit": limit}
    return APICall("GET", "/batches", _page(BatchOut), params=params, retry=True)


def get_batch(batch_id: str) -> APICall[BatchOut]:
    """One batch."""
    return APICall("GET", f"/batches/{batch_id}", _one(BatchOut), retry=True)


def send_feedback_session(session: dict[str, Any]) -> APICall[SessionOut]:
    """Send one search session ``{"session_id", "query", "results", "clicks"?, …}``; safe to
    send again (the same session id and body answer the stored session)."""
    return APICall("POST", "/feedback/sessions", _one(SessionOut), json=session, retry=True)


def upload_feedback(content: bytes, *, filename: str) -> APICall[BulkOut]:
    """Upload NDJSON sessions, one a line; a replay stores nothing twice."""
    files = {"file": (filename, content, "application/x-ndjson")}
    return APICall("POST", "/feedback/sessions/bulk", _one(BulkOut), files=files, retry=True)


def list_feedback_sessions(*, offset: int = 0, limit: int = 100) -> APICall[Page[SessionOut]]:
    """Feedback sessions, newest first."""
    params = {"offset": offset, "limit": limit}
    return APICall("GET", "/feedback/sessions", _page(SessionOut), params=params, retry=True)


def get_feedback_session(session_id: str) -> APICall[SessionOut]:
    """One feedback session with its clicks."""
    return APICall("GET", f"/feedback/sessions/{session_id}", _one(SessionOut), retry=True)


def add_feedback_click(session_id: str, result_id: str) -> APICall[SessionOut]:
    """Record a click that came after the session (recorded once)."""
    path, body = f"/feedback/sessions/{session_id}/clicks", {"result_id": result_id}
    return APICall("POST", path, _one(SessionOut), json=body, retry=True)


def mark_feedback_irrelevant(session_id: str) -> APICall[SessionOut]:
    """Say that nothing the session showed was relevant."""
    path = f"/feedback/sessions/{session_id}/irrelevant"
    return APICall("PUT", path, _one(SessionOut), retry=True)


def get_feedback_summary() -> APICall[FeedbackSummary]:
    """What is collected and not yet released."""
    return APICall("GET", "/feedback", _one(FeedbackSummary), retry=True)


def release_feedback(release_id: str | None = None) -> APICall[BatchOut]:
    """Turn the feedback collected since the last release into a batch; sent again after a
    failure, it still makes one (the release id is generated unless given)."""
    body = {"release_id": release_id or f"release-{uuid.uuid4().hex}"}
    return APICall("POST", "/feedback/release", _one(BatchOut), json=body, retry=True)


def sample_batch() -> APICall[bytes]:
    """The server's sample batch, as JSONL (real pairs from Python's documentation)."""
    return APICall("GET", "/batches/sample", lambda response: response.content, retry=True)


def get_deployments() -> APICall[DeploymentsOut]:
    """The blue (live) model, the previous ones and the models in memory."""
    return APICall("GET", "/deployments", _one(DeploymentsOut), retry=True)


def set_blue(model_id: str) -> APICall[DeploymentsOut]:
    """Make a model live (it is loaded before it takes traffic)."""
    body = {"model_id": model_id}
    return APICall("PUT", "/deployments/blue", _one(DeploymentsOut), json=body, retry=True)


def rollback() -> APICall[DeploymentsOut]:
    """Make the previous blue model live again."""
    return APICall("POST", "/deployments/rollback", _one(DeploymentsOut))


def create_embeddings(
    input: str | list[str], *, model: str | None = None, encoding_format: str = "float"
) -> APICall[EmbeddingsResponse]:
    """Embed texts with a model, or with the blue model when ``model`` is None or "blue"."""
    body: dict[str, Any] = {"input": input, "encoding_format": encoding_format}
    if model is not None:
        body["model"] = model
    # Embedding has no side effect: safe to send again.
    return APICall("POST", "/v1/embeddings", _one(EmbeddingsResponse), json=body, retry=True)


def model_archive_path(model_id: str) -> str:
    return f"/models/{model_id}/download"


def extract_model_archive(archive: Path, directory: Path) -> Path:
    """Unpacks a downloaded ``.tar.gz`` into ``directory``; returns the model's folder."""
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        roots = {Path(member.name).parts[0] for member in tar.getmembers()}
        # The "data" filter refuses absolute paths, links out of the folder and devices.
        tar.extractall(directory, filter="data")
    return directory / roots.pop() if len(roots) == 1 else directory


# ---- retries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, for calls marked ``retry``."""

    max_retries: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0

    def delay(self, call: APICall[Any], attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait before sending again, or -1 to stop (``response`` None: no answer)."""
        failed = response is None or response.status_code >= 500
        if not (call.retry and failed) or attempt >= self.max_retries:
            return -1.0
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _unreachable(base_url: str, error: Exception | None) -> EmbedtuneConnectionError:
    return EmbedtuneConnectionError(f"cannot reach the server at {base_url}: {error}")


def _settle(
    call: APICall[Any],
    response: httpx.Response | None,
    error: httpx.TransportError | None,
    base_url: str = DEFAULT_URL,
) -> httpx.Response:
    """The answer to hand back once no retry is left; raises for errors."""
    if response is None:
        raise _unreachable(base_url, error) from error
    if response.status_code >= 400:
        raise _error_from(response)
    return response


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _base_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("EMBEDTUNE_URL") or DEFAULT_URL).rstrip("/")


def _no_stream_route(exc: EmbedtuneAPIError) -> bool:
    """A 404 of the route itself (a server older than streams), not of the task."""
    return exc.status in (404, 405) and exc.code != "task_not_found"


def _api_key(api_key: str | None) -> str | None:
    return api_key or os.environ.get("EMBEDTUNE_API_KEY") or None


class _Watch:
    """What ``follow`` remembers between two polls of a task."""

    def __init__(self, timeout: float | None):
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.last: tuple[Any, ...] | None = None

    def changed(self, task: TaskOut) -> bool:
        state = (task.status, task.progress, task.training)
        changed, self.last = state != self.last, state
        return changed

    def finished(self, task: TaskOut) -> bool:
        """True once the task has ended; raises ``TaskWaitTimeout`` past the deadline."""
        if task.status in FINISHED:
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise TaskWaitTimeout(f"task {task.id} still {task.status} after {self.timeout}s")
        return False


# ---- the synchronous client -------------------------------------------------------------


class _SyncResource:
    def __init__(self, client: Client):
        self._client = client


def _sync(
    build: Callable[P, APICall[T]],
) -> Callable[Concatenate[_SyncResource, P], T]:
    def method(self: _SyncResource, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._client.call(build(*args, **kwargs))

    method.__doc__ = build.__doc__
    return method


class Tasks(_SyncResource):
    create = _sync(create_task)
    list = _sync(list_tasks)
    get = _sync(get_task)
    cancel = _sync(cancel_task)
    restart = _sync(restart_task)
    events = _sync(list_task_events)
    metrics = _sync(get_task_metrics)

    def follow(
        self, task_id: str, *, poll_interval: float = 1.0, timeout: float | None = None
    ) -> Iterator[TaskOut]:
        """Yields the task each time its status or progress changes, the finished one last.

        Raises ``TaskWaitTimeout`` when ``timeout`` seconds pass first.
        """
        watch = _Watch(timeout)
        task = self.get(task_id)
        if watch.changed(task):
            yield task
        if watch.finished(task):
            return
        try:
            for _ in self.stream(task_id):  # each event: read the task it changed
                task = self.get(task_id)
                if watch.changed(task):
                    yield task
                if watch.finished(task):
                    return
        except EmbedtuneAPIError as exc:
            if not _no_stream_route(exc):
                raise
        while True:  # a server without streams (or one that ended it early): poll
            task = self.get(task_id)
            if watch.changed(task):
                yield task
            if watch.finished(task):
                return
            time.sleep(poll_interval)

    def stream(self, task_id: str, *, last_event_id: int | None = None) -> Iterator[StreamEvent]:
        """The task's events as they happen (after ``last_event_id``, else all of them):
        ``TaskEvent`` for stored events, ``QueueUpdate`` for its place in the queue. Ends
        after the terminal event; reconnects with ``Last-Event-ID`` if the connection drops.
        """
        path = task_stream_path(task_id)
        yield from sync_events(self._client._http, path, last_event_id, _error_from)

    def wait(
        self, task_id: str, timeout: float | None = None, *, poll_interval: float = 1.0
    ) -> TaskOut:
        """The task once it has finished. Raises ``TaskWaitTimeout``."""
        *_, task = self.follow(task_id, poll_interval=poll_interval, timeout=timeout)
        return task


class Models(_SyncResource):
    list = _sync(list_models)
    get = _sync(get_model)
    register = _sync(register_model)

    def download(self, model_id: str, directory: str | Path) -> Path:
        """Downloads and unpacks a model into ``directory``; returns the model's folder."""
        with tempfile.TemporaryDirectory() as scratch:
            archive = Path(scratch) / "model.tar.gz"
            with archive.open("wb") as sink, self._client.stream(model_archive_path(model_id)) as r:
                for chunk in r.iter_bytes():
                    sink.write(chunk)
            return extract_model_archive(archive, Path(directory))


class Batches(_SyncResource):
    create = _sync(create_batch)
    list = _sync(list_batches)
    get = _sync(get_batch)
    sample = _sync(sample_batch)

    def upload(self, path: str | Path, *, name: str | None = None) -> BatchOut:
        """Upload a JSONL file from disk."""
        path = Path(path)
        with path.open("rb") as file:
            return self._client.call(upload_batch(file, filename=path.name, name=name))


class Feedback(_SyncResource):
    send = _sync(send_feedback_session)
    list = _sync(list_feedback_sessions)
    get = _sync(get_feedback_session)
    click = _sync(add_feedback_click)
    irrelevant = _sync(mark_feedback_irrelevant)
    summary = _sync(get_feedback_summary)
    release = _sync(release_feedback)

    def upload(self, path: str | Path) -> BulkOut:
        """Upload an NDJSON file of sessions from disk."""
        path = Path(path)
        return self._client.call(upload_feedback(path.read_bytes(), filename=path.name))


class Deployments(_SyncResource):
    get = _sync(get_deployments)
    set_blue = _sync(set_blue)
    rollback = _sync(rollback)


class Embeddings(_SyncResource):
    create = _sync(create_embeddings)


class Client:
    """A synchronous client; use it as a context manager or call ``close()``.

    ``base_url`` and ``api_key`` default to ``EMBEDTUNE_URL`` and ``EMBEDTUNE_API_KEY``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = _base_url(base_url)
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_headers(_api_key(api_key)),
            timeout=timeout,
            transport=transport,
        )
        self.tasks = Tasks(self)
        self.models = Models(self)
        self.batches = Batches(self)
        self.deployments = Deployments(self)
        self.feedback = Feedback(self)
        self.embeddings = Embeddings(self)

    def send(self, call: APICall[Any]) -> httpx.Response:
        """Sends a call, retrying if it is safe to; raises ``EmbedtuneClientError``."""
        attempt = 0
        while True:
            response, error = None, None
            try:
                response = self._http.request(call.method, call.path, **call.options())
            except httpx.TransportError as exc:
                error = exc
            delay = self.retry.delay(call, attempt, response)
            if delay < 0:
                return _settle(call, response, error, self.base_url)
            time.sleep(delay)
            attempt += 1

    def call(self, call: APICall[T]) -> T:
        """Sends a call and returns its parsed answer."""
        return call.parse(self.send(call))

    def stream(self, path: str) -> _SyncStream:
        """A streamed GET, for downloads; raises ``EmbedtuneClientError`` on entry."""
        return _SyncStream(self._http, path)

    def health(self) -> dict[str, str]:
        """The server's ``/health`` answer."""
        return self.call(APICall("GET", "/health", lambda r: dict(r.json()), retry=True))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _SyncStream:
    def __init__(self, http: httpx.Client, path: str):
        self._http = http
        self._path = path
        self._response: httpx.Response | None = None

    def __enter__(self) -> httpx.Response:
        request = self._http.build_request("GET", self._path)
        try:
            self._response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise _unreachable(str(self._http.base_url).rstrip("/"), exc) from exc
        if self._response.status_code >= 400:
            self._response.read()
            self._response.close()
            raise _error_from(self._response)
        return self._response

    def __exit__(self, *exc_info: object) -> None:
        if self._response is not None:
            self._response.close()


# ---- the asynchronous client ------------------------------------------------------------


class _AsyncResource:
    def __init__(self, client: AsyncClient):
        self._client = client


def _async(
    build: Callable[P, APICall[T]],
) -> Callable[Concatenate[_AsyncResource, P], Awaitable[T]]:
    async def method(self: _AsyncResource, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._client.call(build(*args, **kwargs))

    method.__doc__ = build.__doc__
    return method


class AsyncTasks(_AsyncResource):
    create = _async(create_task)
    list = _async(list_tasks)
    get = _async(get_task)
    cancel = _async(cancel_task)
    restart = _async(restart_task)
    events = _async(list_task_events)
    metrics = _async(get_task_metrics)

    async def follow(
        self, task_id: str, *, poll_interval: float = 1.0, timeout: float | None = None
    ) -> AsyncIterator[TaskOut]:
        """Yields the task each time its status or progress changes, the finished one last.

        Raises ``TaskWaitTimeout`` when ``timeout`` seconds pass first.
        """
        watch = _Watch(timeout)
        task = await self.get(task_id)
        if watch.changed(task):
            yield task
        if watch.finished(task):
            return
        try:
            async for _ in self.stream(task_id):
                task = await self.get(task_id)
                if watch.changed(task):
                    yield task
                if watch.finished(task):
                    return
        except EmbedtuneAPIError as exc:
            if not _no_stream_route(exc):
                raise
        while True:
            task = await self.get(task_id)
            if watch.changed(task):
                yield task
            if watch.finished(task):
                return
            await asyncio.sleep(poll_interval)

    async def stream(
        self, task_id: str, *, last_event_id: int | None = None
    ) -> AsyncIterator[StreamEvent]:
        """The asynchronous twin of ``Tasks.stream``."""
        path = task_stream_path(task_id)
        async for event in async_events(self._client._http, path, last_event_id, _error_from):
            yield event

    async def wait(
        self, task_id: str, timeout: float | None = None, *, poll_interval: float = 1.0
    ) -> TaskOut:
        """The task once it has finished. Raises ``TaskWaitTimeout``."""
        last = None
        async for task in self.follow(task_id, poll_interval=poll_interval, timeout=timeout):
            last = task
        assert last is not None  # follow yields at least once
        return last


class AsyncModels(_AsyncResource):
    list = _async(list_models)
    get = _async(get_model)
    register = _async(register_model)

    async def download(self, model_id: str, directory: str | Path) -> Path:
        """Downloads and unpacks a model into ``directory``; returns the model's folder."""
        with tempfile.TemporaryDirectory() as scratch:
            archive = Path(scratch) / "model.tar.gz"
            with archive.open("wb") as sink:
                await self._client.download_to(model_archive_path(model_id), sink)
            return extract_model_archive(archive, Path(directory))


class AsyncBatches(_AsyncResource):
    create = _async(create_batch)
    list = _async(list_batches)
    get = _async(get_batch)
    sample = _async(sample_batch)

    async def upload(self, path: str | Path, *, name: str | None = None) -> BatchOut:
        """Upload a JSONL file from disk."""
        path = Path(path)
        with path.open("rb") as file:
            return await self._client.call(upload_batch(file, filename=path.name, name=name))


class AsyncFeedback(_AsyncResource):
    send = _async(send_feedback_session)
    list = _async(list_feedback_sessions)
    get = _async(get_feedback_session)
    click = _async(add_feedback_click)
    irrelevant = _async(mark_feedback_irrelevant)
    summary = _async(get_feedback_summary)
    release = _async(release_feedback)

    async def upload(self, path: str | Path) -> BulkOut:
        """Upload an NDJSON file of sessions from disk."""
        path = Path(path)
        return await self._client.call(upload_feedback(path.read_bytes(), filename=path.name))


class AsyncDeployments(_AsyncResource):
    get = _async(get_deployments)
    set_blue = _async(set_blue)
    rollback = _async(rollback)


class AsyncEmbeddings(_AsyncResource):
    create = _async(create_embeddings)


class AsyncClient:
    """The asynchronous twin of ``Client`` (``async with AsyncClient(...) as client``)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.base_url = _base_url(base_url)
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_headers(_api_key(api_key)),
            timeout=timeout,
            transport=transport,
        )
        self.tasks = AsyncTasks(self)
        self.models = AsyncModels(self)
        self.batches = AsyncBatches(self)
        self.deployments = AsyncDeployments(self)
        self.feedback = AsyncFeedback(self)
        self.embeddings = AsyncEmbeddings(self)

    async def send(self, call: APICall[Any]) -> httpx.Response:
        """Sends a call, retrying if it is safe to; raises ``EmbedtuneClientError``."""
        attempt = 0
        while True:
            response, error = None, None
            try:
                response = await self._http.request(call.method, call.path, **call.options())
            except httpx.TransportError as exc:
                error = exc
            delay = self.retry.delay(call, attempt, response)
            if delay < 0:
                return _settle(call, response, error, self.base_url)
            await asyncio.sleep(delay)
            attempt += 1

    async def call(self, call: APICall[T]) -> T:
        """Sends a call and returns its parsed answer."""
        return call.parse(await self.send(call))

    async def download_to(self, path: str, sink: IO[bytes]) -> None:
        """Streams the body of ``GET path`` into ``sink``; raises ``EmbedtuneClientError``."""
        try:
            async with self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error_from(response)
                async for chunk in response.aiter_bytes():
                    sink.write(chunk)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from exc

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
