"""/metrics: the task and queue figures, read from the database at scrape time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_for_status

from .helpers import wait_for_log


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_metrics_count_tasks_by_status_claims_cancels_and_dispatch_latency(
    app_client: TestClient,
    create_task: Callable[..., dict[str, Any]],
    settings_env: dict[str, str],
) -> None:
    done = create_task(metadata={"script": {"steps": 1}})
    wait_for_status(app_client, done["id"])
    running = create_task(metadata={"script": {"steps": 100, "step_seconds": 0.05}})
    wait_for_log(settings_env, "trainings.log", running["id"])
    app_client.put(f"/fine-tuning/task/{running['id']}/cancel")
    pending = create_task(metadata={"script": {"steps": 1}})
    app_client.put(f"/fine-tuning/task/{pending['id']}/cancel")

    response = app_client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples[("embedtune_tasks", (("status", "completed"),))] == 1
    assert samples[("embedtune_tasks", (("status", "canceled"),))] == 2
    assert samples[("embedtune_tasks", (("status", "processing"),))] == 0
    assert samples[("embedtune_task_claims_total", ())] == 2
    assert samples[("embedtune_task_cancels_total", ())] == 2
    assert samples[("embedtune_task_recoveries_total", ())] == 0
    latency = "embedtune_queue_dispatch_latency_seconds"
    assert samples[(f"{latency}_count", ())] == 2
    assert 0 < samples[(f"{latency}_sum", ())] < 10
    assert samples[(f"{latency}_bucket", (("le", "+Inf"),))] == 2
    assert samples[(f"{latency}_bucket", (("le", "60.0"),))] == 2
