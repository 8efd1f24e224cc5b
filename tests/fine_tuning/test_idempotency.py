"""Creating a task exactly once per idempotency key, also under concurrency."""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient

from conftest import both_databases, event_kinds


@both_databases
def test_same_key_same_request_is_200_with_the_existing_task(
    app_client: TestClient, scripted_model: str, batch_id: str
) -> None:
    body = {"embedding_model_id": scripted_model, "batch_id": batch_id, "idempotency_key": "k-1"}
    first = app_client.post("/fine-tuning/task", json=body)
    assert first.status_code == 201
    # Absent metadata equals {}; the key in the header equals the same key in the body.
    replay = app_client.post(
        "/fine-tuning/task",
        json={"embedding_model_id": scripted_model, "batch_id": batch_id, "metadata": {}},
        headers={"Idempotency-Key": "k-1"},
    )
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]
    assert replay.headers["location"] == first.headers["location"]
    assert app_client.get("/fine-tuning/task").headers["x-total-count"] == "1"
    assert event_kinds(app_client, first.json()["id"]).count("dispatched") == 1


def test_replay_returns_the_task_in_its_current_status(
    app_client: TestClient, scripted_model: str, batch_id: str
) -> None:
    body = {
        "embedding_model_id": scripted_model,
        "batch_id": batch_id,
        "idempotency_key": "k-cancel",
        "metadata": {"script": {"steps": 1000}},
    }
    created = app_client.post("/fine-tuning/task", json=body).json()
    app_client.put(f"/fine-tuning/task/{created['id']}/cancel")
    replay = app_client.post("/fine-tuning/task", json=body)
    assert replay.status_code == 200
    assert replay.json()["status"] == "canceled"


@both_databases
def test_same_key_different_request_is_422_idempotency_key_reused(
    app_client: TestClient, scripted_model: str, batch_id: str
) -> None:
    body = {"embedding_model_id": scripted_model, "batch_id": batch_id, "idempotency_key": "k-2"}
    assert app_client.post("/fine-tuning/task", json=body).status_code == 201
    for change in ({"metadata": {"a": 1}}, {"deploy_as_blue": True}, {"batch_id": None}):
        response = app_client.post("/fine-tuning/task", json={**body, **change})
        assert response.status_code == 422, change
        assert response.json()["code"] == "idempotency_key_reused"
    assert app_client.get("/fine-tuning/task").headers["x-total-count"] == "1"


def test_replay_is_answered_before_the_model_is_looked_up(
    app_client: TestClient, scripted_model: str, batch_id: str
) -> None:
    from embedtune.core.db import new_session
    from embedtune.models.tables import EmbeddingModel

    body = {"embedding_model_id": scripted_model, "batch_id": batch_id, "idempotency_key": "k-3"}
    created = app_client.post("/fine-tuning/task", json=body)
    with new_session(writer=True) as session:
        model = session.get(EmbeddingModel, scripted_model)
        assert model is not None
        model.plugin = "uninstalled"  # a new create would now be refused with 422
        session.commit()
    replay = app_client.post("/fine-tuning/task", json=body)
    assert replay.status_code == 200
    assert replay.json()["id"] == created.json()["id"]


def test_header_and_body_keys_that_differ_are_422(
    app_client: TestClient, scripted_model: str
) -> None:
    response = app_client.post(
        "/fine-tuning/task",
        json={"embedding_model_id": scripted_model, "idempotency_key": "a"},
        headers={"Idempotency-Key": "b"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_mismatch"


def test_oversize_header_key_is_422(app_client: TestClient, scripted_model: str) -> None:
    response = app_client.post(
        "/fine-tuning/task",
        json={"embedding_model_id": scripted_model},
        headers={"Idempotency-Key": "k" * 256},
    )
    assert response.status_code == 422


@both_databases
def test_fifty_simultaneous_requests_with_one_key_create_exactly_one_task(
    app_client: TestClient, scripted_model: str, batch_id: str
) -> None:
    body = {
        "embedding_model_id": scripted_model,
        "batch_id": batch_id,
        "idempotency_key": "race",
        "metadata": {"script": {"steps": 1}},
    }
    responses: list[Any] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def create() -> None:
        barrier.wait()
        response = app_client.post("/fine-tuning/task", json=body)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=create) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 49 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert app_client.get("/fine-tuning/task").headers["x-total-count"] == "1"
    assert event_kinds(app_client, responses[0].json()["id"]).count("created") == 1
