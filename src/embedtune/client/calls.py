"""Every call of the API, described once: method, path, parameters, body, whether it is
safe to send again, and how to read its answer. ``Client`` and ``AsyncClient`` send these
descriptions; neither knows a route of its own.

The wire schemas are imported by the call that answers with them, not with this module:
a command (``embedtune --help``, ``task list``) then loads only the schemas it reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

if TYPE_CHECKING:
    from embedtune.batches.schemas import BatchOut
    from embedtune.deployments.schemas import DeploymentsOut, EmbeddingsResponse
    from embedtune.feedback.schemas import BulkOut, FeedbackSummary, SessionOut
    from embedtune.fine_tuning.schemas import TaskEventOut, TaskMetricsOut, TaskOut
    from embedtune.models.schemas import ModelOut

TOTAL_COUNT_HEADER = "X-Total-Count"

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


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
    from embedtune.fine_tuning.schemas import TaskOut

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
    from embedtune.fine_tuning.schemas import TaskOut

    params = [("offset", offset), ("limit", limit), *(("status", s) for s in status or [])]
    return APICall("GET", "/fine-tuning/task", _page(TaskOut), params=params, retry=True)


def get_task(task_id: str) -> APICall[TaskOut]:
    """One task."""
    from embedtune.fine_tuning.schemas import TaskOut

    return APICall("GET", f"/fine-tuning/task/{task_id}", _one(TaskOut), retry=True)


def cancel_task(task_id: str) -> APICall[TaskOut]:
    """Cancel a pending or processing task (409 once it has finished otherwise)."""
    from embedtune.fine_tuning.schemas import TaskOut

    return APICall("PUT", f"/fine-tuning/task/{task_id}/cancel", _one(TaskOut))


def restart_task(task_id: str) -> APICall[TaskOut]:
    """Run a failed, canceled or stuck pending task again, from scratch."""
    from embedtune.fine_tuning.schemas import TaskOut

    return APICall("PUT", f"/fine-tuning/task/{task_id}/restart", _one(TaskOut))


def list_task_events(task_id: str) -> APICall[list[TaskEventOut]]:
    """The task's history, oldest first."""
    from embedtune.fine_tuning.schemas import TaskEventOut

    path = f"/fine-tuning/task/{task_id}/events"
    return APICall("GET", path, _many(TaskEventOut), retry=True)


def get_task_metrics(task_id: str) -> APICall[TaskMetricsOut]:
    """Held-out evaluation before and after training, and the loss curve."""
    from embedtune.fine_tuning.schemas import TaskMetricsOut

    path = f"/fine-tuning/task/{task_id}/metrics"
    return APICall("GET", path, _one(TaskMetricsOut), retry=True)


def list_models(*, offset: int = 0, limit: int = 100) -> APICall[Page[ModelOut]]:
    """Registered models, newest first."""
    from embedtune.models.schemas import ModelOut

    params = {"offset": offset, "limit": limit}
    return APICall("GET", "/models", _page(ModelOut), params=params, retry=True)


def get_model(model_id: str) -> APICall[ModelOut]:
    """One registered model."""
    from embedtune.models.schemas import ModelOut

    return APICall("GET", f"/models/{model_id}", _one(ModelOut), retry=True)


def register_model(
    name: str, path: str, *, model_id: str | None = None, plugin: str | None = None
) -> APICall[ModelOut]:
    """Register a model directory that exists on the server."""
    from embedtune.models.schemas import ModelOut

    body: dict[str, Any] = {"name": name, "path": path}
    if model_id is not None:
        body["id"] = model_id
    if plugin is not None:
        body["plugin"] = plugin
    return APICall("POST", "/models", _one(ModelOut), json=body)


def upload_batch(file: IO[bytes], *, filename: str, name: str | None = None) -> APICall[BatchOut]:
    """Upload a JSONL file of ``{"query", "positive", "negative"?}`` lines."""
    from embedtune.batches.schemas import BatchOut

    data = {"name": name} if name else None
    files = {"file": (filename, file, "application/x-ndjson")}
    return APICall("POST", "/batches", _one(BatchOut), files=files, data=data)


def create_batch(examples: list[dict[str, Any]], *, name: str | None = None) -> APICall[BatchOut]:
    """Create a batch from examples given in memory."""
    from embedtune.batches.schemas import BatchOut

    body: dict[str, Any] = {"examples": examples}
    if name is not None:
        body["name"] = name
    return APICall("POST", "/batches", _one(BatchOut), json=body)


def list_batches(*, offset: int = 0, limit: int = 100) -> APICall[Page[BatchOut]]:
    """Batches, newest first."""
    from embedtune.batches.schemas import BatchOut

    params = {"offset": offset, "limit": limit}
    return APICall("GET", "/batches", _page(BatchOut), params=params, retry=True)


def get_batch(batch_id: str) -> APICall[BatchOut]:
    """One batch."""
    from embedtune.batches.schemas import BatchOut

    return APICall("GET", f"/batches/{batch_id}", _one(BatchOut), retry=True)


def send_feedback_session(session: dict[str, Any]) -> APICall[SessionOut]:
    """Send one search session ``{"session_id", "query", "results", "clicks"?, …}``; safe to
    send again (the same session id and body answer the stored session)."""
    from embedtune.feedback.schemas import SessionOut

    return APICall("POST", "/feedback/sessions", _one(SessionOut), json=session, retry=True)


def upload_feedback(content: bytes, *, filename: str) -> APICall[BulkOut]:
    """Upload NDJSON sessions, one a line; a replay stores nothing twice."""
    from embedtune.feedback.schemas import BulkOut

    files = {"file": (filename, content, "application/x-ndjson")}
    return APICall("POST", "/feedback/sessions/bulk", _one(BulkOut), files=files, retry=True)


def list_feedback_sessions(*, offset: int = 0, limit: int = 100) -> APICall[Page[SessionOut]]:
    """Feedback sessions, newest first."""
    from embedtune.feedback.schemas import SessionOut

    params = {"offset": offset, "limit": limit}
    return APICall("GET", "/feedback/sessions", _page(SessionOut), params=params, retry=True)


def get_feedback_session(session_id: str) -> APICall[SessionOut]:
    """One feedback session with its clicks."""
    from embedtune.feedback.schemas import SessionOut

    return APICall("GET", f"/feedback/sessions/{session_id}", _one(SessionOut), retry=True)


def add_feedback_click(session_id: str, result_id: str) -> APICall[SessionOut]:
    """Record a click that came after the session (recorded once)."""
    from embedtune.feedback.schemas import SessionOut

    path, body = f"/feedback/sessions/{session_id}/clicks", {"result_id": result_id}
    return APICall("POST", path, _one(SessionOut), json=body, retry=True)


def mark_feedback_irrelevant(session_id: str) -> APICall[SessionOut]:
    """Say that nothing the session showed was relevant."""
    from embedtune.feedback.schemas import SessionOut

    path = f"/feedback/sessions/{session_id}/irrelevant"
    return APICall("PUT", path, _one(SessionOut), retry=True)


def get_feedback_summary() -> APICall[FeedbackSummary]:
    """What is collected and not yet released."""
    from embedtune.feedback.schemas import FeedbackSummary

    return APICall("GET", "/feedback", _one(FeedbackSummary), retry=True)


def release_feedback(release_id: str | None = None) -> APICall[BatchOut]:
    """Turn the feedback collected since the last release into a batch; sent again after a
    failure, it still makes one (the release id is generated unless given)."""
    from embedtune.batches.schemas import BatchOut

    body = {"release_id": release_id or f"release-{uuid.uuid4().hex}"}
    return APICall("POST", "/feedback/release", _one(BatchOut), json=body, retry=True)


def sample_batch() -> APICall[bytes]:
    """The server's sample batch, as JSONL (real pairs from Python's documentation)."""
    return APICall("GET", "/batches/sample", lambda response: response.content, retry=True)


def get_deployments() -> APICall[DeploymentsOut]:
    """The blue (live) model, the previous ones and the models in memory."""
    from embedtune.deployments.schemas import DeploymentsOut

    return APICall("GET", "/deployments", _one(DeploymentsOut), retry=True)


def set_blue(model_id: str) -> APICall[DeploymentsOut]:
    """Make a model live (it is loaded before it takes traffic)."""
    from embedtune.deployments.schemas import DeploymentsOut

    body = {"model_id": model_id}
    return APICall("PUT", "/deployments/blue", _one(DeploymentsOut), json=body, retry=True)


def rollback() -> APICall[DeploymentsOut]:
    """Make the previous blue model live again."""
    from embedtune.deployments.schemas import DeploymentsOut

    return APICall("POST", "/deployments/rollback", _one(DeploymentsOut))


def create_embeddings(
    input: str | list[str], *, model: str | None = None, encoding_format: str = "float"
) -> APICall[EmbeddingsResponse]:
    """Embed texts with a model, or with the blue model when ``model`` is None or "blue"."""
    from embedtune.deployments.schemas import EmbeddingsResponse

    body: dict[str, Any] = {"input": input, "encoding_format": encoding_format}
    if model is not None:
        body["model"] = model
    # Embedding has no side effect: safe to send again.
    return APICall("POST", "/v1/embeddings", _one(EmbeddingsResponse), json=body, retry=True)


def health() -> APICall[dict[str, str]]:
    """The server's ``/health`` answer."""
    return APICall("GET", "/health", lambda response: dict(response.json()), retry=True)
