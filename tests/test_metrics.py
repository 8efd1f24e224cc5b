"""/metrics reads running counters, not the event history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, insert

from conftest import both_databases, wait_for_status
from embedtune.core.db import get_engine, new_session
from embedtune.fine_tuning.tables import TaskEvent
from embedtune.migrations import alembic_config, upgrade_database


def scrape(client: TestClient) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        sample.name + "".join(f"{{{v}}}" for v in sample.labels.values()): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


@pytest.fixture
def statements(settings_env: dict[str, str]) -> Iterator[list[str]]:
    """Every SQL statement the process sends while the test runs."""
    sent: list[str] = []
    engine = get_engine(settings_env["EMBEDTUNE_DATABASE_URL"])

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine, "before_cursor_execute", record)


@both_databases
def test_a_scrape_never_reads_the_event_table(
    app_client: TestClient, create_task: Any, statements: list[str]
) -> None:
    task = create_task()
    app_client.put(f"/fine-tuning/task/{task['id']}/cancel")
    statements.clear()
    assert scrape(app_client)["embedtune_task_cancels_total"] == 1
    assert statements, "the scrape reads the database"
    assert not [s for s in statements if "fine_tuning_task_event" in s]


def _claimed(task_id: str, latency: float) -> dict[str, Any]:
    return {"task_id": task_id, "kind": "claimed", "detail": {"queue_latency_s": latency}}


@both_databases
def test_counters_start_from_the_events_recorded_before_the_upgrade(
    settings_env: dict[str, str], create_task: Any, app_client: TestClient
) -> None:
    task_id = create_task()["id"]
    wait_for_status(app_client, task_id)
    before = scrape(app_client)
    url = settings_env["EMBEDTUNE_DATABASE_URL"]
    command.downgrade(alembic_config(url), "0007_serving")  # the revision before the counters
    with new_session(writer=True) as session:
        session.execute(
            insert(TaskEvent),
            [
                _claimed(task_id, 0.02),
                _claimed(task_id, 3.0),
                {"task_id": task_id, "kind": "canceled", "detail": {}},
                {"task_id": task_id, "kind": "heartbeat_lost", "detail": {}},
            ],
        )
        session.commit()
    upgrade_database(url)
    after = scrape(app_client)
    added = {name: after[name] - before[name] for name in after if name in before}
    assert added["embedtune_task_claims_total"] == 2
    assert added["embedtune_task_cancels_total"] == 1
    assert added["embedtune_task_recoveries_total"] == 1
    latency = "embedtune_queue_dispatch_latency_seconds"
    assert added[f"{latency}_count"] == 2
    assert added[f"{latency}_sum"] == pytest.approx(3.02)
    assert added[f"{latency}_bucket{{0.01}}"] == 0
    assert added[f"{latency}_bucket{{0.025}}"] == 1
    assert added[f"{latency}_bucket{{5.0}}"] == 2
