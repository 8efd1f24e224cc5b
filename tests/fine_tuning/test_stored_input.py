"""Task input the API stores must come back: bounded nesting, finite numbers, clean text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import both_databases


def nested(depth: int) -> dict[str, Any]:
    """A JSON object ``depth`` levels deep."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def post_raw(client: TestClient, url: str, body: Any) -> Any:
    """Posts ``body`` as ASCII JSON, so lone surrogates and NaN go out as a client sends them."""
    return client.post(url, content=json.dumps(body), headers={"content-type": "application/json"})


@both_databases
def test_deep_metadata_is_422_and_the_task_list_stays_readable(
    app_client: TestClient, scripted_model: str, batch_id: str
) -> None:
    body = {"embedding_model_id": scripted_model, "batch_id": batch_id, "metadata": nested(255)}
    response = post_raw(app_client, "/fine-tuning/task", body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert "nesting depth" in response.json()["detail"]
    assert "32" in response.json()["detail"]
    listed = app_client.get("/fine-tuning/task")
    assert listed.status_code == 200
    assert listed.json() == []


@both_databases
def test_metadata_at_the_depth_limit_is_stored_and_read_back(
    app_client: TestClient, scripted_model: str, batch_id: str
) -> None:
    metadata = {"note": nested(31)}
    body = {"embedding_model_id": scripted_model, "batch_id": batch_id, "metadata": metadata}
    created = post_raw(app_client, "/fine-tuning/task", body)
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    assert app_client.get(f"/fine-tuning/task/{task_id}").json()["metadata"] == metadata
    assert app_client.get("/fine-tuning/task").json()[0]["id"] == task_id
    assert app_client.put(f"/fine-tuning/task/{task_id}/cancel").status_code in (200, 409)


@both_databases
@pytest.mark.parametrize(
    ("metadata", "said"),
    [
        ({"a": float("nan")}, "finite"),
        ({"a": float("inf")}, "finite"),
        ({"a": "\ud800"}, "surrogate"),
        ({"\udfff": 1}, "surrogate"),
        ({"a": ["x\u0000"]}, "NUL"),
    ],
)
def test_metadata_a_database_cannot_store_is_422(
    app_client: TestClient, scripted_model: str, metadata: dict[str, Any], said: str
) -> None:
    body = {"embedding_model_id": scripted_model, "metadata": metadata}
    response = post_raw(app_client, "/fine-tuning/task", body)
    assert response.status_code == 422, response.text
    assert said in response.json()["detail"]
    assert app_client.get("/fine-tuning/task").json() == []
