"""The Python client against a live server: typed answers, errors, retries, waiting."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest

from embedtune.batches.schemas import BatchOut
from embedtune.client import (
    AsyncClient,
    Client,
    EmbedtuneAPIError,
    EmbedtuneConnectionError,
    RetryPolicy,
    TaskWaitTimeout,
)
from embedtune.fine_tuning.schemas import TaskOut
from embedtune.fine_tuning.states import TaskStatus
from embedtune.models.schemas import ModelOut
from live_server import LiveServer, script

FAST_RETRIES = RetryPolicy(max_retries=3, base_delay_s=0.01)


class DropsFirstResponse(httpx.BaseTransport):
    """Sends the first matching request to the server, then loses its answer."""

    def __init__(self, method: str, path: str):
        self.inner = httpx.HTTPTransport()
        self.target = (method, path)
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if (request.method, request.url.path) != self.target:
            return response
        self.sent.append(request)
        if len(self.sent) > 1:
            return response
        response.read()  # the server has answered: the task exists now
        response.close()
        raise httpx.RemoteProtocolError("connection dropped", request=request)


class AnswersFirstWith(httpx.BaseTransport):
    """Answers the first request with ``status`` without sending it."""

    def __init__(self, status: int):
        self.inner = httpx.HTTPTransport()
        self.status = status
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls == 1:
            return httpx.Response(self.status, json={"detail": "busy", "code": "busy"})
        return self.inner.handle_request(request)


def test_create_retried_after_a_dropped_connection_makes_one_task(
    live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    transport = DropsFirstResponse("POST", "/fine-tuning/task")
    with live_server.client(transport=transport, retry=FAST_RETRIES) as client:
        task = client.tasks.create(live_model, batch_id=live_batch, metadata=script())
        tasks = client.tasks.list()
    assert len(transport.sent) == 2
    keys = {request.headers["Idempotency-Key"] for request in transport.sent}
    assert len(keys) == 1 and task.idempotency_key in keys
    assert tasks.total == 1 and [t.id for t in tasks] == [task.id]


def test_5xx_answers_are_retried_for_reads(live_server: LiveServer) -> None:
    transport = AnswersFirstWith(503)
    with live_server.client(transport=transport, retry=FAST_RETRIES) as client:
        assert client.health()["status"] == "ok"
    assert transport.calls == 2


def test_5xx_is_not_retried_for_a_cancel_and_raises(live_server: LiveServer) -> None:
    transport = AnswersFirstWith(502)
    with (
        live_server.client(transport=transport, retry=FAST_RETRIES) as client,
        pytest.raises(EmbedtuneAPIError) as raised,
    ):
        client.tasks.cancel("task_whatever")
    assert (raised.value.status, raised.value.code, transport.calls) == (502, "busy", 1)


def test_api_errors_carry_status_code_and_detail(live_server: LiveServer) -> None:
    with live_server.client() as client, pytest.raises(EmbedtuneAPIError) as raised:
        client.tasks.get("task_missing")
    assert raised.value.status == 404
    assert raised.value.code == "task_not_found"
    assert "task_missing" in raised.value.detail


def test_unreachable_server_raises_a_connection_error_after_retries() -> None:
    retry = RetryPolicy(max_retries=2, base_delay_s=0.01)
    with (
        Client("http://127.0.0.1:9", retry=retry) as client,
        pytest.raises(EmbedtuneConnectionError, match="cannot reach"),
    ):
        client.tasks.list()


def test_create_and_wait_returns_the_servers_models(
    live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    with live_server.client() as client:
        created = client.tasks.create(live_model, batch_id=live_batch, metadata=script())
        done = client.tasks.wait(created.id, timeout=30, poll_interval=0.05)
        model = client.models.get(done.best_model_id or "")
        events = client.tasks.events(done.id)
        metrics = client.tasks.metrics(done.id)
    assert isinstance(created, TaskOut) and created.status is TaskStatus.pending
    assert created.metadata == script()
    assert done.status is TaskStatus.completed and done.progress == 1.0
    assert isinstance(model, ModelOut) and model.parent_id == live_model
    assert events[0].kind == "created" and events[-1].kind == "completed"
    assert metrics.metrics == {"improved": True, "steps": 3}


def test_follow_yields_each_change_and_ends_with_the_finished_task(
    live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    with live_server.client() as client:
        task = client.tasks.create(
            live_model, batch_id=live_batch, metadata=script(steps=4, step_seconds=0.3)
        )
        seen = list(client.tasks.follow(task.id, poll_interval=0.05))
    progress = [t.progress for t in seen]
    assert progress == sorted(progress) and len(set(progress)) >= 3
    assert seen[-1].status is TaskStatus.completed
    assert all(t.status is not TaskStatus.completed for t in seen[:-1])


def test_wait_gives_up_after_its_timeout(
    live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    with live_server.client() as client:
        task = client.tasks.create(
            live_model, batch_id=live_batch, metadata=script(steps=50, step_seconds=0.2)
        )
        with pytest.raises(TaskWaitTimeout):
            client.tasks.wait(task.id, timeout=0.3, poll_interval=0.05)
        canceled = client.tasks.cancel(task.id)
        restarted = client.tasks.restart(task.id)
    assert canceled.status is TaskStatus.canceled
    assert restarted.status is TaskStatus.pending and restarted.finished_at is None


def test_list_filters_by_status_and_reports_the_total(
    live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    with live_server.client() as client:
        first = client.tasks.create(live_model, batch_id=live_batch, metadata=script())
        client.tasks.wait(first.id, timeout=30, poll_interval=0.05)
        second = client.tasks.create(
            live_model, batch_id=live_batch, metadata=script(steps=50, step_seconds=0.2)
        )
        client.tasks.cancel(second.id)
        page = client.tasks.list(limit=1)
        canceled = client.tasks.list(status=["canceled"])
    assert page.total == 2 and [t.id for t in page] == [second.id]
    assert canceled.total == 1 and [t.id for t in canceled] == [second.id]


def test_batch_upload_and_model_download(
    live_server: LiveServer, live_model: str, tmp_path: Path
) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"query": "a", "positive": "b"}\n\n{"query": "c", "positive": "d"}\n')
    with live_server.client() as client:
        batch = client.batches.upload(data)
        listed = client.batches.list()
        folder = client.models.download(live_model, tmp_path / "downloads")
    assert (batch.name, batch.num_examples) == ("pairs.jsonl", 2)
    assert listed.total == 1 and listed[0] == batch
    assert (folder / "model.txt").read_text() == "base\n"


def test_async_client_creates_waits_and_raises_like_the_sync_one(
    live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    async def scenario() -> tuple[TaskOut, list[TaskOut], EmbedtuneAPIError]:
        async with AsyncClient(live_server.url) as client:
            task = await client.tasks.create(live_model, batch_id=live_batch, metadata=script())
            done = await client.tasks.wait(task.id, timeout=30, poll_interval=0.05)
            listed = await client.tasks.list()
            try:
                await client.models.get("missing")
            except EmbedtuneAPIError as exc:
                return done, list(listed), exc
        raise AssertionError("no error raised")

    done, listed, error = asyncio.run(scenario())
    assert done.status is TaskStatus.completed and [t.id for t in listed] == [done.id]
    assert (error.status, error.code) == (404, "model_not_found")


def test_async_client_uploads_batches_and_downloads_models(
    live_server: LiveServer, live_model: str, tmp_path: Path
) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"query": "a", "positive": "b"}\n')

    async def scenario() -> tuple[BatchOut, Path, EmbedtuneAPIError]:
        async with AsyncClient(live_server.url) as client:
            batch = await client.batches.upload(data, name="async")
            folder = await client.models.download(live_model, tmp_path / "downloads")
            try:
                await client.models.download("missing", tmp_path / "nowhere")
            except EmbedtuneAPIError as exc:
                return batch, folder, exc
        raise AssertionError("no error raised")

    batch, folder, error = asyncio.run(scenario())
    assert (batch.name, batch.num_examples) == ("async", 1)
    assert (folder / "model.txt").read_text() == "base\n"
    assert (error.status, error.code) == (404, "model_not_found")


def test_embeddings_with_the_blue_model_and_deployments(live_server: LiveServer) -> None:
    with live_server.client() as client:
        deployments = client.deployments.get()
        answer = client.embeddings.create(["a cat", "a dog"])
        with pytest.raises(EmbedtuneAPIError) as raised:
            client.deployments.rollback()
    assert deployments.blue is not None and deployments.blue.model_id == "all-MiniLM-L6-v2"
    assert answer.model == "all-MiniLM-L6-v2"
    assert [item.index for item in answer.data] == [0, 1]
    assert all(isinstance(i.embedding, list) and len(i.embedding) == 384 for i in answer.data)
    assert (raised.value.status, raised.value.code) == (409, "no_previous_blue")


def test_an_http_server_is_reached_without_loading_the_ca_bundle() -> None:
    """Only an https server's certificate is checked (against httpx's CA bundle); the
    context for an http server trusts nothing, so it could never accept a certificate."""
    from embedtune.client.resources import tls_verify

    assert tls_verify("https://embedtune.example") is True
    assert tls_verify("HTTPS://embedtune.example") is True
    context = tls_verify("http://127.0.0.1:8000")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs() == []
