"""The event streams against a live server: every state change in order, exact replays
after ``Last-Event-ID``, and events that travel between API processes through the database."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import create_bundled_model_task
from embedtune.client import AsyncClient, Client, QueueUpdate, TaskEvent
from embedtune.core.config import get_settings
from embedtune.core.db import new_session
from embedtune.fine_tuning import repository, running
from embedtune.models.service import BUNDLED_MODEL_ID
from live_server import LiveServer, live_batch, live_model, live_server, script, serving

__all__ = ["live_batch", "live_model", "live_server"]

EMBEDTUNE = Path(sys.executable).with_name("embedtune")
STATE_CHANGES = {"created", "claimed", "completed", "failed", "canceled", "restarted", "returned"}


def stored(events: list[object]) -> list[TaskEvent]:
    return [event for event in events if isinstance(event, TaskEvent)]


def _trained_tokens(url: str) -> float:
    """``embedtune_training_tokens_total`` of the server's /metrics."""
    text = httpx.get(f"{url}/metrics").text
    [value] = re.findall(r"^embedtune_training_tokens_total (\S+)$", text, re.MULTILINE)
    return float(value)


def test_stream_of_a_real_training_has_every_state_change_in_order_and_ends_with_it(
    live_server: LiveServer, tmp_path: Path
) -> None:
    tokens_before = _trained_tokens(live_server.url)
    with live_server.client() as client:
        created = create_bundled_model_task(
            httpx.Client(base_url=live_server.url),  # type: ignore[arg-type]
            tmp_path,
            pairs=20,  # 16 or more left to train on after the held-out split
            seed=1,
            training={"max_steps": 2, "batch_size": 4},
        )
        events = stored(list(client.tasks.stream(created["id"])))
        history = client.tasks.events(created["id"])
        task = client.tasks.get(created["id"])
    ids = [event.id for event in events]
    assert ids == sorted(set(ids)), "ids must grow, without repeats"
    assert [e.kind for e in events if e.kind in STATE_CHANGES] == [
        "created",
        "claimed",
        "completed",
    ]
    assert events[-1].kind == "completed" and events[-1].status == "completed"
    progress = [e for e in events if e.kind == "progress"]
    assert progress, "no progress event"
    assert progress[-1].detail["step"] == progress[-1].detail["total_steps"] == 2
    # The last step is always scored and saved, and both are in the journal.
    evaluated = [e.detail for e in events if e.kind == "evaluated"]
    assert evaluated and evaluated[-1]["step"] == 2 and evaluated[-1]["metrics"]
    saved = [e.detail for e in events if e.kind == "checkpoint_saved"]
    assert saved and saved[-1] == {"step": 2, "name": "trial-0/checkpoint-2"}
    # The stream sent exactly the stored history, and the task reads its final step.
    assert ids == [event.id for event in history]
    assert task.training is not None and task.training.step == task.training.total_steps == 2
    assert _trained_tokens(live_server.url) > tokens_before


def test_reconnect_with_last_event_id_gets_exactly_the_missed_events(
    live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    with live_server.client() as client:
        task = client.tasks.create(
            live_model, batch_id=live_batch, metadata=script(steps=12, step_seconds=0.1)
        )
        first: list[TaskEvent] = []
        for event in client.tasks.stream(task.id):
            if isinstance(event, TaskEvent):
                first.append(event)
            if any(e.kind == "progress" for e in first):
                break  # the connection drops mid-training
        rest = stored(list(client.tasks.stream(task.id, last_event_id=first[-1].id)))
        history = [event.id for event in client.tasks.events(task.id)]
        # After the end too: a reconnect replays from the store, and after the last event
        # there is nothing to send.
        replay = stored(list(client.tasks.stream(task.id, last_event_id=history[2])))
        after_end = list(client.tasks.stream(task.id, last_event_id=history[-1]))
    assert [e.id for e in first + rest] == history
    assert rest[-1].kind == "completed"
    assert [e.id for e in replay] == history[3:]
    assert after_end == []


def test_async_client_streams_typed_events(
    live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    async def follow() -> list[TaskEvent]:
        async with AsyncClient(live_server.url) as client:
            task = await client.tasks.create(live_model, batch_id=live_batch, metadata=script())
            return [e async for e in client.tasks.stream(task.id) if isinstance(e, TaskEvent)]

    events = asyncio.run(follow())
    assert events[0].kind == "created" and events[-1].status == "completed"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _test_redis_url() -> str:
    return f"redis://127.0.0.1:6379/{os.environ.get('EMBEDTUNE_TEST_REDIS_DB', '14')}"


@pytest.fixture
def second_api(settings_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """Another API process (``embedtune serve``) on the same database; on a broker of its
    own, so it trains nothing: all it knows of the tasks comes through the database."""
    port = _free_port()
    env = {
        **os.environ,
        "EMBEDTUNE_PORT": str(port),
        "EMBEDTUNE_BROKER_URL": _test_redis_url(),
        "EMBEDTUNE_QUEUE_NAME": f"unused-{port}",
    }
    log = tmp_path / "second-api.log"
    process = subprocess.Popen(
        [str(EMBEDTUNE), "serve"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(30)


def test_cancel_received_by_one_api_process_reaches_a_stream_served_by_another(
    live_server: LiveServer, live_model: str, live_batch: str, second_api: str
) -> None:
    with live_server.client() as here, Client(second_api) as there:
        task = here.tasks.create(
            live_model, batch_id=live_batch, metadata=script(steps=400, step_seconds=0.05)
        )
        seen: list[TaskEvent] = []
        for event in there.tasks.stream(task.id):
            if not isinstance(event, TaskEvent):
                continue
            seen.append(event)
            if event.kind == "progress" and len([e for e in seen if e.kind == "progress"]) == 2:
                here.tasks.cancel(task.id)
    kinds = [e.kind for e in seen if e.kind in STATE_CHANGES]
    assert kinds == ["created", "claimed", "canceled"]
    assert seen[-1].status == "canceled"


def test_all_tasks_stream_replays_after_last_event_id_and_filters_by_task(
    live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    with live_server.client() as client:
        first = client.tasks.create(live_model, batch_id=live_batch, metadata=script())
        second = client.tasks.create(live_model, batch_id=live_batch, metadata=script())
        *_, done = client.tasks.stream(second.id)
        history = client.tasks.events(second.id)
    wanted = [event.id for event in history[1:]]
    received: list[int] = []
    url = f"{live_server.url}/events/stream"
    params = {"task_id": second.id}
    headers = {"Last-Event-ID": str(history[0].id)}
    with httpx.stream("GET", url, params=params, headers=headers, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("id:"):
                received.append(int(line[3:]))
            if len(received) == len(wanted):
                break
    assert received == wanted
    assert first.id != second.id and done.kind == "completed"
    bad = httpx.get(url, headers={"Last-Event-ID": "soon"})
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"


def test_pending_task_stream_sends_its_place_in_the_queue_as_it_moves(
    live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    slow = script(steps=400, step_seconds=0.05)
    positions: list[int | None] = []
    with live_server.client() as client:
        running = client.tasks.create(live_model, batch_id=live_batch, metadata=slow)
        while client.tasks.get(running.id).status != "processing":
            time.sleep(0.05)
        ahead = client.tasks.create(live_model, batch_id=live_batch, metadata=slow)
        waiting = client.tasks.create(live_model, batch_id=live_batch, metadata=slow)
        for event in client.tasks.stream(waiting.id):
            if isinstance(event, QueueUpdate):
                positions.append(event.queue_position)
                if len(positions) == 1:
                    client.tasks.cancel(running.id)  # the worker takes the next one
                if event.queue_position == 1:
                    break
        for task in (ahead, waiting):
            client.tasks.cancel(task.id)
    assert positions[0] == 2 and positions[-1] == 1


def test_an_idle_stream_sends_keep_alive_comments(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDTUNE_STREAM_PING_INTERVAL", "0.2")
    get_settings.cache_clear()
    from embedtune.app import create_app

    comments: list[str] = []
    # No task exists: nothing but keep-alive comments can come (or the read times out).
    with (
        serving(create_app()) as url,
        httpx.stream("GET", f"{url}/events/stream", timeout=5) as response,
    ):
        for line in response.iter_lines():
            if line:
                comments.append(line)
            if len(comments) == 2:
                break
    assert all(line.startswith(":") for line in comments), comments


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_last_event_id_beyond_the_id_column_is_422(app_client: TestClient) -> None:
    for params, headers in (({"last_event_id": 2**31}, {}), ({}, {"Last-Event-ID": "2147483648"})):
        response = app_client.get("/events/stream", params=params, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error"


class NullDispatcher:
    def dispatch(self, task_id: str, message_id: str) -> None:
        """A failed task is not sent again."""

    def abort(self, run_id: str) -> None:
        """Nothing runs."""


@pytest.fixture
def polls_every_minute(settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams read the journal once a minute, on a Redis broker that no worker consumes:
    an event that comes sooner was signaled."""
    monkeypatch.setenv("EMBEDTUNE_STREAM_POLL_INTERVAL", "60")
    monkeypatch.setenv("EMBEDTUNE_BROKER_URL", _test_redis_url())
    monkeypatch.setenv("EMBEDTUNE_QUEUE_NAME", f"unused-{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()


def _kinds(response: httpx.Response) -> Iterator[str | None]:
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield json.loads(line[5:]).get("kind")


def _seconds_from_each_move_to_its_event(url: str) -> list[float]:
    """Creates a task on ``url``, then claims and fails it as a worker of this process
    does, each move after the stream delivered the one before."""
    with Client(url) as client:
        pairs = [{"query": f"q{i}", "positive": f"p{i}"} for i in range(24)]  # 16 to train
        batch = client.batches.create(pairs, name="moves").id
        task_id = client.tasks.create(BUNDLED_MODEL_ID, batch_id=batch).id
    seconds = []
    stream_url = f"{url}/fine-tuning/task/{task_id}/stream"
    with httpx.stream("GET", stream_url, timeout=10) as response:
        kinds = _kinds(response)
        assert "dispatched" in kinds  # replayed: the stream follows the journal from here
        with new_session(writer=True) as session:
            task = repository.get(session, task_id)
            assert task is not None
            claimed = running.claim_task(session, task_id, task.message_id, "test:1", "run")
            session.commit()
        began = time.monotonic()
        assert claimed is not None and "claimed" in kinds
        seconds.append(time.monotonic() - began)
        with new_session(writer=True) as session:
            running.fail_or_retry(
                session,
                claimed,
                "test",
                "moved by the test",
                retryable=False,
                max_attempts=1,
                dispatcher=NullDispatcher(),
            )
            session.commit()
        began = time.monotonic()
        assert "failed" in kinds
        seconds.append(time.monotonic() - began)
    return seconds


def test_an_event_committed_in_the_api_process_reaches_its_streams_before_the_next_poll(
    polls_every_minute: None,
) -> None:
    from embedtune.app import create_app

    with serving(create_app()) as url:
        assert max(_seconds_from_each_move_to_its_event(url)) < 5


def test_an_event_committed_by_another_process_reaches_the_streams_through_redis(
    polls_every_minute: None, second_api: str
) -> None:
    assert max(_seconds_from_each_move_to_its_event(second_api)) < 5
