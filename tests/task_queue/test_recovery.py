"""Workers that die or are stopped never strand a task: SIGKILL → a reaper recovers it and
another worker completes it; SIGTERM → it goes back to pending at no attempt's cost."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_for_status

from .helpers import WorkerProcesses, event_kinds, events_of, models_of, wait_for_log

LONG = {"script": {"steps": 12, "step_seconds": 0.25}}


@pytest.mark.parametrize(("broker", "database_url"), [("rabbitmq", "postgresql")], indirect=True)
def test_sigkilled_worker_task_is_recovered_and_completed_by_another(
    app_client: TestClient,
    create_task: Callable[..., dict[str, Any]],
    start_workers: Callable[..., WorkerProcesses],
    settings_env: dict[str, str],
) -> None:
    workers = start_workers(processes=2)
    task = create_task(metadata=LONG)
    [first] = wait_for_log(settings_env, "trainings.log", task["id"])

    os.kill(first["pid"], signal.SIGKILL)
    done = wait_for_status(app_client, task["id"], timeout=60)

    starts = wait_for_log(settings_env, "trainings.log", task["id"], count=2)
    assert done["status"] == "completed"
    assert done["attempts"] == 2
    assert len(starts) == 2 and starts[1]["pid"] != first["pid"]
    assert len(models_of(app_client, task["id"])) == 1
    [lost] = events_of(app_client, task["id"], "heartbeat_lost")
    assert lost["detail"]["worker_id"].split(":")[1] == str(first["pid"])
    [retry] = events_of(app_client, task["id"], "returned")
    assert retry["detail"]["error"]["code"] == "worker_lost"
    # The supervisor replaced the killed process.
    assert workers.output().count("started worker process") == 3
    metrics = {
        sample.name: sample.value
        for family in text_string_to_metric_families(app_client.get("/metrics").text)
        for sample in family.samples
    }
    assert metrics["embedtune_task_recoveries_total"] == 1
    assert metrics["embedtune_task_claims_total"] == 2


def test_sigterm_returns_the_task_to_pending_for_another_worker(
    app_client: TestClient,
    create_task: Callable[..., dict[str, Any]],
    start_workers: Callable[..., WorkerProcesses],
    settings_env: dict[str, str],
) -> None:
    pools = [start_workers(), start_workers()]
    task = create_task(metadata=LONG)
    [first] = wait_for_log(settings_env, "trainings.log", task["id"])
    [owner] = [pool for pool in pools if _parent_of(first["pid"]) == pool.process.pid]

    exit_code = owner.stop()
    done = wait_for_status(app_client, task["id"], timeout=60)

    starts = wait_for_log(settings_env, "trainings.log", task["id"], count=2)
    assert exit_code == 0
    assert done["status"] == "completed"
    assert done["attempts"] == 1  # the interrupted attempt was refunded
    assert starts[1]["pid"] != first["pid"]
    [returned] = events_of(app_client, task["id"], "returned")
    assert returned["detail"]["reason"] == "worker_shutdown"
    kinds = event_kinds(app_client, task["id"])
    assert kinds.count("claimed") == 2 and "heartbeat_lost" not in kinds
    assert len(models_of(app_client, task["id"])) == 1


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])
