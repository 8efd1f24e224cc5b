"""No client text that a database cannot hold reaches SQL: NUL and unpaired surrogates in
any text field are 422, on SQLite and on PostgreSQL (where NUL used to be a 500)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import both_databases

BAD_TEXTS = ["x\u0000y", "\ud800"]


def post_raw(client: TestClient, method: str, url: str, body: Any) -> Any:
    return client.request(
        method, url, content=json.dumps(body), headers={"content-type": "application/json"}
    )


@both_databases
@pytest.mark.parametrize("bad", BAD_TEXTS)
def test_unstorable_text_in_any_field_is_422(
    app_client: TestClient, scripted_model: str, batch_id: str, bad: str
) -> None:
    task = {"embedding_model_id": scripted_model, "batch_id": batch_id}
    requests = [
        ("POST", "/batches", {"name": bad, "examples": [{"query": "q", "positive": "p"}]}),
        ("POST", "/models", {"name": bad, "path": "/nonexistent"}),
        ("POST", "/fine-tuning/task", {**task, "embedding_model_id": bad}),
        ("POST", "/fine-tuning/task", {**task, "batch_id": bad}),
        ("POST", "/fine-tuning/task", {**task, "idempotency_key": bad}),
        ("POST", "/v1/embeddings", {"model": bad, "input": "hello"}),
        ("PUT", "/deployments/blue", {"model_id": bad}),
    ]
    for method, url, body in requests:
        response = post_raw(app_client, method, url, body)
        assert response.status_code == 422, (url, body, response.text)
        answer = response.json()
        code = answer["error"]["code"] if url.startswith("/v1/") else answer["code"]
        assert code in {"validation_error", "invalid_batch"}, response.text
    assert app_client.get("/fine-tuning/task").json() == []
    assert app_client.get("/batches").headers["X-Total-Count"] == "1"


@both_databases
def test_nul_in_an_example_is_422_naming_it(app_client: TestClient) -> None:
    examples = [{"query": "q", "positive": "p"}, {"query": "q\u0000", "positive": "p"}]
    response = post_raw(app_client, "POST", "/batches", {"examples": examples})
    assert response.status_code == 422, response.text
    assert "examples[1]" in response.json()["detail"]
