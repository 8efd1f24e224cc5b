"""Exactly one training per task, whatever the broker delivers: duplicates, stale messages
from before a restart, messages of canceled tasks, and messages lost while it was down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import wait_for_status, wait_until
from embedtune.core.config import get_settings

from .helpers import (
    REDIS_URL,
    TcpProxy,
    WorkerProcesses,
    drain,
    event_kinds,
    models_of,
    read_log,
)

SLOW = {"script": {"steps": 4, "step_seconds": 0.25}}


@pytest.mark.parametrize(
    ("broker", "database_url"),
    [("embedded", "sqlite"), ("redis", "postgresql"), ("rabbitmq", "sqlite")],
    indirect=True,
)
def test_duplicate_and_stale_messages_are_dropped(
    broker: str,
    app_client: TestClient,
    create_task: Callable[..., dict[str, Any]],
    start_workers: Callable[..., WorkerProcesses],
    settings_env: dict[str, str],
) -> None:
    if broker != "embedded":
        start_workers()
    task = create_task(metadata=SLOW)
    stored = app_client.get(f"/fine-tuning/task/{task['id']}").json()
    current = _message_id(app_client, task["id"])
    dispatcher = app_client.app.state.dispatcher  # type: ignore[attr-defined]
    # Redelivered copies of the current message, and one from before a restart.
    for message_id in (current, current, "msg-stale"):
        dispatcher.dispatch(task["id"], message_id)

    done = wait_for_status(app_client, task["id"], timeout=30)
    drain(app_client)

    assert stored["status"] in {"pending", "processing"}
    assert done["status"] == "completed"
    assert done["attempts"] == 1
    assert len(read_log(settings_env, "trainings.log", task["id"])) == 1
    assert event_kinds(app_client, task["id"]).count("claimed") == 1
    assert len(models_of(app_client, task["id"])) == 1


@pytest.mark.parametrize(("broker", "database_url"), [("rabbitmq", "postgresql")], indirect=True)
def test_restart_of_pending_task_trains_it_once(
    app_client: TestClient,
    create_task: Callable[..., dict[str, Any]],
    start_workers: Callable[..., WorkerProcesses],
    settings_env: dict[str, str],
) -> None:
    # No worker yet: the first message waits in the broker when the restart sends another.
    task = create_task(metadata=SLOW)
    first = _message_id(app_client, task["id"])
    restarted = app_client.put(f"/fine-tuning/task/{task['id']}/restart")
    assert restarted.status_code == 200, restarted.text
    assert _message_id(app_client, task["id"]) != first

    start_workers()
    done = wait_for_status(app_client, task["id"], timeout=30)
    drain(app_client)

    assert done["status"] == "completed"
    assert len(read_log(settings_env, "trainings.log", task["id"])) == 1
    assert event_kinds(app_client, task["id"]).count("claimed") == 1


def test_task_canceled_while_pending_is_never_trained(
    app_client: TestClient,
    create_task: Callable[..., dict[str, Any]],
    start_workers: Callable[..., WorkerProcesses],
    settings_env: dict[str, str],
) -> None:
    task = create_task(metadata=SLOW)
    assert app_client.put(f"/fine-tuning/task/{task['id']}/cancel").status_code == 200
    control = create_task(metadata=SLOW)

    start_workers()
    # The control task, sent after the canceled one, completes: the queue was consumed.
    assert wait_for_status(app_client, control["id"], timeout=30)["status"] == "completed"
    drain(app_client)

    assert app_client.get(f"/fine-tuning/task/{task['id']}").json()["status"] == "canceled"
    assert read_log(settings_env, "trainings.log", task["id"]) == []
    assert "claimed" not in event_kinds(app_client, task["id"])


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_task_created_while_broker_is_down_is_dispatched_when_it_is_back(
    redis_proxy: TcpProxy,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    start_workers: Callable[..., WorkerProcesses],
    settings_env: dict[str, str],
) -> None:
    # API and worker reach Redis through the proxy, which is down: an outage for everyone
    # (a worker with a broker would rightly re-send the task from its own reaper).
    monkeypatch.setenv("EMBEDTUNE_BROKER_URL", REDIS_URL.replace("6379", str(redis_proxy.port)))
    get_settings.cache_clear()
    start_workers()
    client: TestClient = request.getfixturevalue("app_client")
    create_task: Callable[..., dict[str, Any]] = request.getfixturevalue("create_task")

    task = create_task(metadata={"script": {"steps": 2, "step_seconds": 0.05}})
    # Two reaper passes retry the send while the broker is still down.
    wait_until(
        lambda: _failed_sends(client, task["id"]) >= 3,
        timeout=30,
        message="the reaper did not retry the send while the broker was down",
    )

    stranded = client.get(f"/fine-tuning/task/{task['id']}").json()
    kinds_while_down = event_kinds(client, task["id"])
    redis_proxy.up()
    done = wait_for_status(client, task["id"], timeout=30)

    assert task["status"] == "pending"
    assert stranded["status"] == "pending"
    assert kinds_while_down[:3] == ["created", "dispatched", "dispatch_failed"]
    assert done["status"] == "completed"
    assert done["attempts"] == 1
    assert len(read_log(settings_env, "trainings.log", task["id"])) == 1


def _failed_sends(client: TestClient, task_id: str) -> int:
    """Sends of the task that failed: its ``dispatch_failed`` event and the repeats counted
    in it."""
    events = client.get(f"/fine-tuning/task/{task_id}/events").json()
    failed = [event for event in events if event["kind"] == "dispatch_failed"]
    return sum(1 + int(event["detail"].get("repeats", 0)) for event in failed)


def _message_id(client: TestClient, task_id: str) -> str:
    dispatched = [
        event
        for event in client.get(f"/fine-tuning/task/{task_id}/events").json()
        if event["kind"] in {"dispatched", "restarted"}
    ]
    message_id: str = dispatched[-1]["detail"]["message_id"]
    return message_id
