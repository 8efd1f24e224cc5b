"""Batch uploads that used to answer 500 are refused with 422 naming the line or example."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from conftest import both_databases

GOOD = '{"query": "q", "positive": "p"}'
BAD_VALUES = {
    "lone surrogate": '"\\ud800"',
    "deep nesting": "[" * 1000 + "]" * 1000,
    "huge integer": "1" * 5000,
}


@both_databases
@pytest.mark.parametrize("bad", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_jsonl_line_is_422_naming_the_line(app_client: TestClient, bad: str) -> None:
    jsonl = f'{GOOD}\n{{"query": "q", "positive": {bad}}}\n'
    response = app_client.post("/batches", files={"file": ("b.jsonl", jsonl.encode())})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("line 2:")
    assert app_client.get("/batches").json() == []


@both_databases
@pytest.mark.parametrize("bad", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_json_body_is_422(app_client: TestClient, bad: str) -> None:
    body = f'{{"examples": [{GOOD}, {{"query": "q", "positive": {bad}}}]}}'
    response = app_client.post(
        "/batches", content=body.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] in {"validation_error", "invalid_batch"}
    if bad == BAD_VALUES["lone surrogate"]:
        assert "examples[1]" in response.json()["detail"]
    assert app_client.get("/batches").json() == []
