"""Training batches: validated whole, stored once, listed newest first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient


def _stored_files(settings_env: dict[str, str]) -> list[Path]:
    root = Path(settings_env["EMBEDTUNE_ARTIFACTS_DIR"])
    return [p for p in root.rglob("*") if p.is_file() and p.suffix == ".jsonl"]


def test_json_batch_is_stored_with_its_count(app_client: TestClient) -> None:
    examples = [
        {"query": "q1", "positive": "p1"},
        {"query": "q2", "positive": "p2", "negative": "n2"},
        {"query": "q3", "positive": "p3", "negative": None},
    ]
    response = app_client.post("/batches", json={"name": "mine", "examples": examples})
    assert response.status_code == 201
    batch = response.json()
    assert set(batch) == {
        *("id", "name", "num_examples", "created_at"),
        *("source", "release_id", "num_sessions", "num_clicks"),
    }
    assert (batch["source"], batch["release_id"], batch["num_sessions"]) == ("upload", None, None)
    assert (batch["name"], batch["num_examples"]) == ("mine", 3)
    assert response.headers["location"] == f"/batches/{batch['id']}"
    assert app_client.get(f"/batches/{batch['id']}").json() == batch


def test_jsonl_upload_skips_blank_lines_and_defaults_its_name_to_the_file(
    app_client: TestClient, settings_env: dict[str, str]
) -> None:
    lines = [json.dumps({"query": f"q{i}", "positive": f"p{i}"}) for i in range(5)]
    content = ("\n".join(lines[:2]) + "\n\n   \n" + "\n".join(lines[2:])).encode()
    response = app_client.post("/batches", files={"file": ("pairs.jsonl", content)})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "pairs.jsonl"
    assert response.json()["num_examples"] == 5
    [stored] = _stored_files(settings_env)
    assert [json.loads(line) for line in stored.read_text().splitlines()] == [
        json.loads(line) for line in lines
    ]


def test_upload_name_field_overrides_the_file_name(app_client: TestClient) -> None:
    content = json.dumps({"query": "q", "positive": "p"}).encode()
    response = app_client.post(
        "/batches", files={"file": ("x.jsonl", content)}, data={"name": "clicks-2026-11"}
    )
    assert response.json()["name"] == "clicks-2026-11"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "invalid JSON"),
        ('{"query": "q"}', "'positive' is required"),
        ('{"query": "q", "positive": "  "}', "'positive' must not be empty"),
        ('{"query": "q", "positive": "p", "label": 1}', "unknown field(s) 'label'"),
        ('{"query": 3, "positive": "p"}', "'query' must be a string"),
        ('["q", "p"]', "expected a JSON object"),
    ],
)
def test_bad_line_is_422_naming_it_and_nothing_is_kept(
    app_client: TestClient, settings_env: dict[str, str], line: str, problem: str
) -> None:
    good = json.dumps({"query": "q", "positive": "p"})
    content = "\n".join([good, good, line, good]).encode()
    response = app_client.post("/batches", files={"file": ("b.jsonl", content)})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_batch"
    assert body["detail"].startswith("line 3: ")
    assert problem in body["detail"]
    assert app_client.get("/batches").headers["x-total-count"] == "0"
    assert _stored_files(settings_env) == []


def test_bad_json_example_is_422_naming_its_index(app_client: TestClient) -> None:
    examples = [{"query": "q", "positive": "p"}, {"query": "q", "positive": "p"}, {"query": ""}]
    response = app_client.post("/batches", json={"examples": examples})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("examples[2]: ")


def test_non_utf8_line_is_422(app_client: TestClient) -> None:
    response = app_client.post("/batches", files={"file": ("b.jsonl", b'{"query": "\xff"}\n')})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("line 1: not UTF-8")


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_batch_is_422(app_client: TestClient, content: bytes) -> None:
    response = app_client.post("/batches", files={"file": ("b.jsonl", content)})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_batch"
    assert app_client.post("/batches", json={"examples": []}).status_code == 422


def test_upload_over_the_limit_is_413(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from embedtune.app import create_app
    from embedtune.core.config import get_settings

    monkeypatch.setenv("EMBEDTUNE_MAX_BATCH_BYTES", "2048")
    get_settings.cache_clear()
    line = json.dumps({"query": "q" * 50, "positive": "p" * 50}) + "\n"
    with TestClient(create_app()) as client:
        small = client.post("/batches", files={"file": ("s.jsonl", line.encode())})
        assert small.status_code == 201
        large = client.post("/batches", files={"file": ("l.jsonl", (line * 40).encode())})
        assert large.status_code == 413
        assert large.json()["code"] == "payload_too_large"
        assert client.get("/batches").headers["x-total-count"] == "1"


def test_batch_larger_than_the_json_limit_is_accepted_as_upload(app_client: TestClient) -> None:
    line = json.dumps({"query": "q" * 500, "positive": "p" * 500}) + "\n"
    response = app_client.post("/batches", files={"file": ("big.jsonl", (line * 1500).encode())})
    assert response.status_code == 201
    assert response.json()["num_examples"] == 1500


def test_other_content_types_are_415(app_client: TestClient) -> None:
    response = app_client.post("/batches", content=b"q,p", headers={"content-type": "text/csv"})
    assert response.status_code == 415


def test_multipart_without_file_is_422(app_client: TestClient) -> None:
    response = app_client.post("/batches", data={"name": "x"}, files={"other": ("a", b"b")})
    assert response.status_code == 422


def test_list_is_newest_first_with_paging(app_client: TestClient) -> None:
    ids = [
        app_client.post(
            "/batches", json={"name": f"b{i}", "examples": [{"query": "q", "positive": "p"}]}
        ).json()["id"]
        for i in range(3)
    ]
    listed = app_client.get("/batches", params={"limit": 2})
    assert listed.headers["x-total-count"] == "3"
    assert [b["id"] for b in listed.json()] == ids[::-1][:2]
    assert app_client.get("/batches/batch-missing").json()["code"] == "batch_not_found"
