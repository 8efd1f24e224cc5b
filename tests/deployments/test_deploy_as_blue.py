"""deploy_as_blue and wait_on_conflict, with real tiny trainings of the bundled model."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sentence_transformers import SentenceTransformer

from conftest import wait_for_status
from embedtune.core.db import new_session, utcnow
from embedtune.deployments import repository
from embedtune.models.tables import EmbeddingModel

from .conftest import BUNDLED, IMPROVING, NO_CHANGE

CreateTask = Callable[..., dict[str, Any]]


def _blue(client: TestClient) -> str:
    model_id: str = client.get("/deployments").json()["blue"]["model_id"]
    return model_id


def _wait_for_deployment(
    client: TestClient, task_id: str, statuses: set[str], timeout: float = 300.0
) -> dict[str, Any]:
    task = wait_for_status(client, task_id, timeout=timeout)
    assert task["status"] == "completed", task
    deadline = time.monotonic() + timeout
    while (task["deployment"] or {}).get("status") not in statuses:
        assert time.monotonic() < deadline, task["deployment"]
        time.sleep(0.1)
        task = client.get(f"/fine-tuning/task/{task_id}").json()
    return task


def _deployment_events(client: TestClient, task_id: str) -> list[str]:
    events = client.get(f"/fine-tuning/task/{task_id}/events").json()
    return [e["detail"]["status"] for e in events if e["kind"] == "deployment"]


def test_better_model_becomes_blue_and_serves_its_own_embeddings(
    client: TestClient, create_deploy_task: CreateTask
) -> None:
    task = _wait_for_deployment(client, create_deploy_task(IMPROVING)["id"], {"deployed"})

    model_id = task["best_model_id"]
    deployment = task["deployment"]
    assert deployment["blue_before"] == BUNDLED
    assert deployment["blue_after"] == model_id
    assert deployment["candidate"] > deployment["blue"]
    assert _blue(client) == model_id
    assert _deployment_events(client, task["id"]) == ["deployed"]
    texts = ["vesk glim", "a waterproof backpack"]
    served = client.post("/v1/embeddings", json={"input": texts}).json()
    assert served["model"] == model_id
    with new_session() as session:
        path = session.get(EmbeddingModel, model_id).path  # type: ignore[union-attr]
    direct = SentenceTransformer(path, device="cpu").encode(texts)
    np.testing.assert_allclose([d["embedding"] for d in served["data"]], direct, atol=1e-5)


def test_model_not_better_than_blue_is_not_deployed(
    client: TestClient, create_deploy_task: CreateTask
) -> None:
    task = _wait_for_deployment(client, create_deploy_task(NO_CHANGE)["id"], {"skipped_not_better"})

    assert task["deployment"]["blue_after"] == BUNDLED
    assert task["deployment"]["candidate"] <= task["deployment"]["blue"]
    assert _blue(client) == BUNDLED
    assert client.get(f"/models/{task['best_model_id']}").status_code == 200


def test_quality_gate_can_be_turned_off(client: TestClient, create_deploy_task: CreateTask) -> None:
    created = create_deploy_task(NO_CHANGE, metadata={"deploy": {"require_improvement": False}})

    task = _wait_for_deployment(client, created["id"], {"deployed"})

    assert _blue(client) == task["best_model_id"]


def test_two_tasks_finishing_together_without_wait_the_second_conflicts(
    client: TestClient, create_deploy_task: CreateTask
) -> None:
    first = create_deploy_task(IMPROVING)
    second = create_deploy_task(IMPROVING, wait_on_conflict=False)

    first = _wait_for_deployment(client, first["id"], {"deployed"})
    second = _wait_for_deployment(client, second["id"], {"conflict"})

    assert "blue changed" in second["deployment"]["detail"]
    assert _blue(client) == first["best_model_id"]
    assert client.get(f"/models/{second['best_model_id']}").status_code == 200
    assert _deployment_events(client, second["id"]) == ["conflict"]


def test_two_tasks_finishing_together_with_wait_the_second_competes_with_the_new_blue(
    client: TestClient, create_deploy_task: CreateTask
) -> None:
    first = create_deploy_task(IMPROVING)
    second = create_deploy_task(
        NO_CHANGE, wait_on_conflict=True, metadata={"deploy": {"require_improvement": False}}
    )

    first = _wait_for_deployment(client, first["id"], {"deployed"})
    second = _wait_for_deployment(client, second["id"], {"deployed"})

    assert second["deployment"]["blue_before"] == first["best_model_id"]
    assert _blue(client) == second["best_model_id"]
    assert _deployment_events(client, second["id"]) == ["waiting", "deployed"]


def _hold_deployment_lock() -> str:
    with new_session(writer=True) as session:
        token = "lock-held-by-test"
        assert repository.take_lock(session, token, utcnow().replace(year=2100))
        session.commit()
    return token


def _release_deployment_lock(token: str) -> None:
    with new_session(writer=True) as session:
        repository.release_lock(session, token)
        session.commit()


def test_waiting_deployment_goes_ahead_once_the_other_deployment_is_done(
    client: TestClient, create_deploy_task: CreateTask
) -> None:
    token = _hold_deployment_lock()
    created = create_deploy_task(IMPROVING, wait_on_conflict=True)

    waiting = _wait_for_deployment(client, created["id"], {"waiting"})
    assert "in progress" in waiting["deployment"]["detail"]
    _release_deployment_lock(token)

    task = _wait_for_deployment(client, created["id"], {"deployed"})
    assert _blue(client) == task["best_model_id"]


def test_canceling_a_waiting_task_ends_the_wait(
    client: TestClient, create_deploy_task: CreateTask
) -> None:
    token = _hold_deployment_lock()
    created = create_deploy_task(NO_CHANGE, wait_on_conflict=True)
    _wait_for_deployment(client, created["id"], {"waiting"})

    response = client.put(f"/fine-tuning/task/{created['id']}/cancel")
    _release_deployment_lock(token)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    assert response.json()["deployment"]["status"] == "canceled"
    assert client.put(f"/fine-tuning/task/{created['id']}/cancel").status_code == 409
    assert _deployment_events(client, created["id"]) == ["waiting", "canceled"]
    assert _blue(client) == BUNDLED


def test_wait_that_times_out_while_a_deployment_runs_ends_in_conflict(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDTUNE_DEPLOY_WAIT_TIMEOUT", "0.5")
    monkeypatch.setenv("EMBEDTUNE_REAPER_INTERVAL", "0.2")
    from embedtune.app import create_app
    from embedtune.core.config import get_settings

    get_settings.cache_clear()
    with TestClient(create_app()) as client:
        examples = [{"query": f"q{i}", "positive": f"p{i}"} for i in range(20)]
        batch = client.post("/batches", json={"name": "b", "examples": examples}).json()["id"]
        token = _hold_deployment_lock()
        body = {
            "embedding_model_id": BUNDLED,
            "batch_id": batch,
            "metadata": {"training": NO_CHANGE},
            "deploy_as_blue": True,
            "wait_on_conflict": True,
        }
        created = client.post("/fine-tuning/task", json=body).json()

        task = _wait_for_deployment(client, created["id"], {"conflict"})

        _release_deployment_lock(token)
        assert "after waiting" in task["deployment"]["detail"]
        assert _deployment_events(client, created["id"]) == ["waiting", "conflict"]
        assert _blue(client) == BUNDLED


def test_deployment_failure_leaves_the_task_completed(client: TestClient, tmp_path: Any) -> None:
    (tmp_path / "model.txt").write_text("base\n")
    body = {"id": "scripted", "name": "s", "path": str(tmp_path), "plugin": "scripted"}
    assert client.post("/models", json=body).status_code == 201
    batch = client.post(
        "/batches", json={"name": "b", "examples": [{"query": "q", "positive": "p"}]}
    ).json()["id"]
    created = client.post(
        "/fine-tuning/task",
        json={"embedding_model_id": "scripted", "batch_id": batch, "deploy_as_blue": True},
    ).json()

    task = _wait_for_deployment(client, created["id"], {"failed"})

    assert task["status"] == "completed"
    assert "cannot be served" in task["deployment"]["detail"]
    assert _blue(client) == BUNDLED


def test_invalid_deploy_options_are_422_at_creation(
    client: TestClient, create_deploy_task: CreateTask, training_batch: str
) -> None:
    body = {
        "embedding_model_id": BUNDLED,
        "batch_id": training_batch,
        "metadata": {"deploy": {"require_improvement": "maybe"}},
    }
    response = client.post("/fine-tuning/task", json=body)

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_deploy_options"
    assert "deploy.require_improvement" in response.json()["detail"]
