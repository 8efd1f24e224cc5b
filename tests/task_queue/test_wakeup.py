"""A new task reaches a waiting worker at once: it does not wait for the consumer's poll."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from conftest import wait_for_status

from .helpers import WorkerProcesses

#: Far beyond "a few seconds": a claim within the bound below came from a wake-up.
IDLE_POLL_MS = "60000"
CLAIMED_WITHIN_S = 2.0
SHORT = {"script": {"steps": 2, "step_seconds": 0.05}}


def _claim_delay(task: dict[str, Any]) -> float:
    started = datetime.fromisoformat(task["started_at"])
    return (started - datetime.fromisoformat(task["created_at"])).total_seconds()


def test_idle_worker_claims_new_tasks_without_waiting_out_its_poll(
    app_client: TestClient,
    create_task: Callable[..., dict[str, Any]],
    start_workers: Callable[..., WorkerProcesses],
) -> None:
    start_workers(EMBEDTUNE_CONSUMER_IDLE_POLL_MS=IDLE_POLL_MS)
    time.sleep(1.0)  # the consumer has fetched once and waits for its next poll
    idle = wait_for_status(app_client, create_task(metadata=SHORT)["id"], timeout=30)
    # Created as soon as the previous one is seen completed: the worker has just acked.
    after_task = wait_for_status(app_client, create_task(metadata=SHORT)["id"], timeout=30)

    assert idle["status"] == "completed"
    assert after_task["status"] == "completed"
    assert _claim_delay(idle) < CLAIMED_WITHIN_S
    assert _claim_delay(after_task) < CLAIMED_WITHIN_S
