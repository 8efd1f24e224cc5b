"""The Python client of the embedtune API: ``Client`` and ``AsyncClient``.

>>> client = Client("http://127.0.0.1:8000", api_key="et_...")
>>> task = client.tasks.create("all-MiniLM-L6-v2", batch_id=batch.id)
>>> client.tasks.wait(task.id, timeout=3600).status
<TaskStatus.completed: 'completed'>

Every method returns the pydantic model the server itself answers with. Errors of the API
raise ``EmbedtuneAPIError`` (``status``, ``code``, ``detail``); a server that cannot be
reached raises ``EmbedtuneConnectionError``. Each request is described once, as an
``APICall`` (``calls.py``), and the two clients (``sync.py``, ``aio.py``) only differ in
how they send it.
"""

from embedtune.client.aio import AsyncClient
from embedtune.client.archive import extract_model_archive, model_archive_path
from embedtune.client.calls import APICall, Page
from embedtune.client.errors import (
    EmbedtuneAPIError,
    EmbedtuneClientError,
    EmbedtuneConnectionError,
    InvalidModelArchive,
    TaskWaitTimeout,
)
from embedtune.client.resources import DEFAULT_TIMEOUT_S, DEFAULT_URL
from embedtune.client.retry import RetryPolicy
from embedtune.client.stream import QueueUpdate, StreamEvent, TaskEvent
from embedtune.client.sync import Client

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_URL",
    "APICall",
    "AsyncClient",
    "Client",
    "EmbedtuneAPIError",
    "EmbedtuneClientError",
    "EmbedtuneConnectionError",
    "InvalidModelArchive",
    "Page",
    "QueueUpdate",
    "RetryPolicy",
    "StreamEvent",
    "TaskEvent",
    "TaskWaitTimeout",
    "extract_model_archive",
    "model_archive_path",
]
