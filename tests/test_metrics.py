"""/metrics reads running counters, not the event history; one rendering serves concurrent
scrapes; an optional token guards it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, insert

from conftest import both_databases, wait_for_status
from embedtune.core.config import get_settings
from embedtune.core.db import get_engine, new_session
from embedtune.fine_tuning.metrics import Exposition
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


def test_concurrent_scrapes_share_one_render_and_reuse_it_while_fresh() -> None:
    renders: list[float] = []
    now = [10.0]

    def render() -> bytes:
        renders.append(now[0])
        return f"render {len(renders)}".encode()

    exposition = Exposition(render, max_age=1.0, clock=lambda: now[0])

    async def scrape(count: int) -> list[bytes]:
        return await asyncio.gather(*(exposition.get() for _ in range(count)))

    assert asyncio.run(scrape(40)) == [b"render 1"] * 40
    now[0] += 0.9
    assert asyncio.run(scrape(5)) == [b"render 1"] * 5  # still fresh: no render
    now[0] += 0.2
    assert asyncio.run(scrape(5)) == [b"render 2"] * 5
    assert len(renders) == 2


def test_metrics_token_when_set_is_required(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDTUNE_METRICS_TOKEN", "scrape-secret")
    get_settings.cache_clear()
    from embedtune.app import create_app

    with TestClient(create_app()) as client:
        missing = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer other"})
        right = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.json()["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert right.status_code == 200
    assert "embedtune_tasks" in right.text
