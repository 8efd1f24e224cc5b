"""The task API contract through HTTP, with the embedded worker and the scripted plugin."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import both_databases, wait_for_status

TASK_FIELDS = {
    "id",
    "embedding_model_id",
    "batch_id",
    "status",
    "metadata",
    "idempotency_key",
    "deploy_as_blue",
    "wait_on_conflict",
    "best_model_id",
    "best_model_url",
    "progress",
    "training",
    "error",
    "attempts",
    "deployment",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "queue_position",
    "estimated_start_at",
    "estimated_finish_at",
}


@both_databases
def test_create_returns_201_with_location_and_pending_task(
    app_client: TestClient, scripted_model: str, batch_id: str
) -> None:
    response = app_client.post(
        "/fine-tuning/task", json={"embedding_model_id": scripted_model, "batch_id": batch_id}
    )
    assert response.status_code == 201
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert response.headers["location"] == f"/fine-tuning/task/{task['id']}"
    assert task["status"] == "pending"
    assert task["metadata"] == {}
    assert task["attempts"] == 0
    assert task["progress"] == 0.0
    assert task["best_model_id"] is task["best_model_url"] is task["error"] is None
    assert task["created_at"].endswith("Z")


@both_databases
def test_task_is_trained_by_the_embedded_worker_and_its_model_registered(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]], scripted_model: str
) -> None:
    task = create_task(metadata={"script": {"steps": 5}})
    done = wait_for_status(app_client, task["id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 1.0
    assert done["attempts"] == 1
    assert done["started_at"] is not None and done["finished_at"] is not None
    model = app_client.get(f"/models/{done['best_model_id']}").json()
    assert model["parent_id"] == scripted_model
    assert model["task_id"] == task["id"]
    assert done["best_model_url"].endswith(f"/models/{done['best_model_id']}/download")
    download = app_client.get(f"/models/{done['best_model_id']}/download")
    assert download.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:gz") as archive:
        member = archive.extractfile(f"{done['best_model_id']}/model.txt")
        assert member is not None
        assert task["id"] in member.read().decode()
    events = app_client.get(f"/fine-tuning/task/{task['id']}/events").json()
    kinds = [e["kind"] for e in events if e["kind"] != "progress"]
    assert kinds == ["created", "dispatched", "claimed", "completed"]
    # The last progress of the run is stored before the completion, at the final step.
    assert events[-2]["kind"] == "progress"
    assert events[-2]["detail"]["step"] == events[-2]["detail"]["total_steps"] == 5
    assert done["training"]["step"] == done["training"]["total_steps"] == 5


def test_unknown_model_and_batch_are_404(
    app_client: TestClient, scripted_model: str, batch_id: str
) -> None:
    response = app_client.post("/fine-tuning/task", json={"embedding_model_id": "nope"})
    assert response.status_code == 404
    assert response.json()["code"] == "model_not_found"
    response = app_client.post(
        "/fine-tuning/task", json={"embedding_model_id": scripted_model, "batch_id": "nope"}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "batch_not_found"


def test_model_whose_plugin_cannot_fine_tune_is_422(
    app_client: TestClient, tmp_path: Path, batch_id: str
) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.txt").write_text("x")
    registered = app_client.post(
        "/models",
        json={"id": "serve-only", "name": "s", "path": str(tmp_path / "m"), "plugin": "serve-only"},
    )
    assert registered.status_code == 201
    response = app_client.post(
        "/fine-tuning/task", json={"embedding_model_id": "serve-only", "batch_id": batch_id}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "plugin_unavailable"


def test_model_whose_plugin_is_not_installed_is_422(app_client: TestClient, batch_id: str) -> None:
    from embedtune.core.db import new_session
    from embedtune.models.tables import EmbeddingModel

    with new_session(writer=True) as session:
        session.add(EmbeddingModel(id="orphan", name="o", path="/nowhere", plugin="uninstalled"))
        session.commit()
    response = app_client.post(
        "/fine-tuning/task", json={"embedding_model_id": "orphan", "batch_id": batch_id}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "plugin_unavailable"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"embedding_model_id": ""}, "embedding_model_id"),
        ({}, "embedding_model_id"),
        ({"embedding_model_id": "m", "surprise": 1}, "surprise"),
        ({"embedding_model_id": "m", "deploy_as_blue": "true"}, "deploy_as_blue"),
        ({"embedding_model_id": "m", "wait_on_conflict": 1}, "wait_on_conflict"),
        ({"embedding_model_id": "m", "metadata": [1, 2]}, "metadata"),
        ({"embedding_model_id": "m", "idempotency_key": ""}, "idempotency_key"),
        ({"embedding_model_id": "m", "idempotency_key": "k" * 256}, "idempotency_key"),
        ({"embedding_model_id": 5}, "embedding_model_id"),
    ],
)
def test_invalid_create_body_is_422_naming_the_field(
    app_client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = app_client.post("/fine-tuning/task", json=body)
    assert response.status_code == 422
    error = response.json()
    assert error["code"] == "validation_error"
    assert field in error["detail"]
    assert any(field in map(str, e["loc"]) for e in error["errors"])


def test_metadata_over_64_kib_is_422_metadata_too_large(
    app_client: TestClient, scripted_model: str, batch_id: str
) -> None:
    body = {
        "embedding_model_id": scripted_model,
        "batch_id": batch_id,
        "metadata": {"blob": "x" * (64 * 1024)},
    }
    response = app_client.post("/fine-tuning/task", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "metadata_too_large"


def test_body_over_1_mib_is_413(app_client: TestClient) -> None:
    body = json.dumps({"embedding_model_id": "m", "metadata": {"blob": "x" * (1024 * 1024)}})
    response = app_client.post(
        "/fine-tuning/task", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_streamed_body_over_1_mib_without_length_is_413(app_client: TestClient) -> None:
    def chunks() -> Any:
        yield b'{"embedding_model_id": "m", "metadata": {"blob": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}}'

    response = app_client.post(
        "/fine-tuning/task", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "raw",
    [b"{", b"null", b"[]", b'"text"', b"1e999999", b'{"embedding_model_id": null}', b"\xff\xfe"],
)
def test_malformed_json_is_4xx_never_500(app_client: TestClient, raw: bytes) -> None:
    response = app_client.post(
        "/fine-tuning/task", content=raw, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert set(response.json()) >= {"detail", "code"}


def test_unknown_task_is_404_for_get_cancel_restart_events(app_client: TestClient) -> None:
    for method, path in [
        ("GET", "/fine-tuning/task/ft-missing"),
        ("PUT", "/fine-tuning/task/ft-missing/cancel"),
        ("PUT", "/fine-tuning/task/ft-missing/restart"),
        ("GET", "/fine-tuning/task/ft-missing/events"),
        ("GET", "/fine-tuning/task/ft-missing/metrics"),
    ]:
        response = app_client.request(method, path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "task_not_found"


@both_databases
def test_list_is_newest_first_with_total_count_and_status_filter(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]]
) -> None:
    done = create_task()
    wait_for_status(app_client, done["id"])
    canceled = [create_task(metadata={"script": {"steps": 1000}}) for _ in range(3)]
    for task in canceled:
        app_client.put(f"/fine-tuning/task/{task['id']}/cancel")

    listed = app_client.get("/fine-tuning/task")
    assert listed.headers["x-total-count"] == "4"
    assert [t["id"] for t in listed.json()] == [t["id"] for t in reversed([done, *canceled])]

    page = app_client.get("/fine-tuning/task", params={"offset": 1, "limit": 2})
    assert [t["id"] for t in page.json()] == [canceled[1]["id"], canceled[0]["id"]]
    assert page.headers["x-total-count"] == "4"

    only_canceled = app_client.get("/fine-tuning/task", params={"status": "canceled"})
    assert only_canceled.headers["x-total-count"] == "3"
    assert {t["status"] for t in only_canceled.json()} == {"canceled"}

    both = app_client.get(
        "/fine-tuning/task", params=[("status", "completed"), ("status", "canceled")]
    )
    assert both.headers["x-total-count"] == "4"
    assert [t["id"] for t in both.json()] == [t["id"] for t in listed.json()]
    merged_page = app_client.get(
        "/fine-tuning/task",
        params=[("status", "completed"), ("status", "canceled"), ("offset", "2"), ("limit", "5")],
    )
    assert [t["id"] for t in merged_page.json()] == [canceled[0]["id"], done["id"]]


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"status": "running"}, {"limit": "ten"}],
)
def test_list_rejects_bad_paging_and_status(app_client: TestClient, params: dict[str, Any]) -> None:
    response = app_client.get("/fine-tuning/task", params=params)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_openapi_declares_every_response_code(app_client: TestClient) -> None:
    paths = app_client.get("/openapi.json").json()["paths"]
    expected = {
        ("/fine-tuning/task", "post"): {"200", "201", "404", "413", "422"},
        ("/fine-tuning/task", "get"): {"200", "422"},
        ("/fine-tuning/task/{task_id}", "get"): {"200", "404"},
        ("/fine-tuning/task/{task_id}/cancel", "put"): {"200", "404", "409"},
        ("/fine-tuning/task/{task_id}/restart", "put"): {"200", "404", "409"},
        ("/batches", "post"): {"201", "413", "415", "422"},
        ("/models", "post"): {"201", "409", "422"},
    }
    for (path, method), codes in expected.items():
        assert codes <= set(paths[path][method]["responses"]), (path, method)


def test_many_creates_at_once_all_succeed(
    app_client: TestClient, scripted_model: str, batch_id: str
) -> None:
    statuses: list[int] = []
    barrier = threading.Barrier(20)

    def create() -> None:
        barrier.wait()
        response = app_client.post(
            "/fine-tuning/task",
            json={
                "embedding_model_id": scripted_model,
                "batch_id": batch_id,
                "metadata": {"script": {"steps": 1}},
            },
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 20
    assert app_client.get("/fine-tuning/task").headers["x-total-count"] == "20"
