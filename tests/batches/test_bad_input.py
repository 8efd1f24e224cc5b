"""Batch uploads that used to answer 500 are refused with 422 naming the line or example."""

from __future__ import annotations

import json

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


def test_json_batch_over_its_lower_limit_is_413_pointing_to_jsonl(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from embedtune.app import create_app
    from embedtune.core.config import get_settings

    monkeypatch.setenv("EMBEDTUNE_MAX_BATCH_JSON_BYTES", "4096")
    get_settings.cache_clear()
    examples = [{"query": "q" * 50, "positive": "p" * 50}] * 60
    jsonl = "".join(json.dumps(example) + "\n" for example in examples)
    with TestClient(create_app()) as client:
        as_json = client.post("/batches", json={"examples": examples})
        assert as_json.status_code == 413, as_json.text
        assert as_json.json()["code"] == "payload_too_large"
        assert "JSONL" in as_json.json()["detail"]
        as_file = client.post("/batches", files={"file": ("b.jsonl", jsonl.encode())})
        assert as_file.status_code == 201, as_file.text
        assert as_file.json()["num_examples"] == 60


def test_default_json_batch_limit_is_far_below_the_upload_limit() -> None:
    from embedtune.core.config import Settings

    settings = Settings()
    assert settings.max_batch_json_bytes <= 16 * 1024 * 1024 < settings.max_batch_bytes
