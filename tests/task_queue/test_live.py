"""Live state with real worker processes: queue positions, the worker registry, and a
webhook delivery that outlives the worker that first tried it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import wait_for_status
from embedtune.core.config import get_settings
from embedtune.core.db import new_session
from embedtune.fine_tuning import repository, running
from webhooks.conftest import WEBHOOK_ENV, Receiver, receiver

from .helpers import WorkerProcesses

__all__ = ["receiver"]


def positions(client: TestClient, task_ids: list[str]) -> list[int | None]:
    return [client.get(f"/fine-tuning/task/{t}").json()["queue_position"] for t in task_ids]


def test_queue_positions_of_pending_tasks_count_from_one_and_move_when_one_is_claimed(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]]
) -> None:
    tasks = [create_task()["id"] for _ in range(5)]
    assert positions(app_client, tasks) == [1, 2, 3, 4, 5]
    assert app_client.get("/workers").json() == []
    # No worker: when it starts is unknown, so it says nothing.
    assert app_client.get(f"/fine-tuning/task/{tasks[0]}").json()["estimated_start_at"] is None
    with new_session(writer=True) as session:
        first = repository.get(session, tasks[0])
        assert first is not None
        assert running.claim_task(session, first.id, first.message_id, "test:1:1", "run-1")
        session.commit()
    assert positions(app_client, tasks) == [None, 1, 2, 3, 4]
    listed = app_client.get("/fine-tuning/task", params={"status": "pending"}).json()
    assert sorted(task["queue_position"] for task in listed) == [1, 2, 3, 4]


def test_webhook_delivery_pending_when_its_worker_is_killed_is_sent_after_the_restart(
    app_client: TestClient,
    create_task: Callable[..., dict[str, Any]],
    start_workers: Callable[..., WorkerProcesses],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The retry comes 2 s after the failed attempt: the worker is killed before it.
    env = {**WEBHOOK_ENV, "EMBEDTUNE_WEBHOOK_RETRY_SCALE": "0.4"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    start_workers(1, ready_timeout=180)
    [worker] = app_client.get("/workers").json()
    receiver.answers = [503]
    created = app_client.post("/webhooks", json={"url": receiver.url, "events": ["task.canceled"]})
    assert created.status_code == 201, created.text
    webhook = created.json()
    task = create_task(metadata={"script": {"steps": 400, "step_seconds": 0.05}})
    wait_for_status(app_client, task["id"], {"processing"})
    deadline = time.monotonic() + 10
    while app_client.get("/workers").json()[0]["current_task_id"] != task["id"]:
        assert time.monotonic() < deadline, "the worker does not show its task"
        time.sleep(0.05)
    app_client.put(f"/fine-tuning/task/{task['id']}/cancel")
    receiver.wait_for(1)
    os.kill(worker["pid"], signal.SIGKILL)
    [first, second] = receiver.wait_for(2, timeout=120)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    deadline = time.monotonic() + 10
    while (log := app_client.get(f"/webhooks/{webhook['id']}/deliveries").json())[0][
        "status"
    ] == "pending":
        assert time.monotonic() < deadline
    assert log[0]["status"] == "delivered" and log[0]["attempts"] == 2
    # The supervisor started another process, which sent it.
    assert [w["pid"] for w in app_client.get("/workers").json()] != [worker["pid"]]
