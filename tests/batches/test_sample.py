"""The sample batch: real pairs, shipped with the package, downloadable and uploadable."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from embedtune.batches import sample


def test_sample_batch_downloads_as_jsonl_and_uploads_as_a_batch(app_client: TestClient) -> None:
    response = app_client.get("/batches/sample")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = response.content.splitlines()
    examples = [json.loads(line) for line in lines]
    assert len(examples) == sample.SAMPLE_SIZE
    assert len({e["query"] for e in examples}) == len(examples)
    assert all(set(e) == {"query", "positive"} and len(e["positive"]) >= 120 for e in examples)

    uploaded = app_client.post(
        "/batches", files={"file": ("sample.jsonl", response.content, "application/x-ndjson")}
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["num_examples"] == sample.SAMPLE_SIZE


def test_sample_batch_is_rebuilt_deterministically_from_the_standard_library() -> None:
    built = sample.build()
    shipped = [json.loads(line) for line in sample.read_sample().splitlines()]
    assert built == sample.build()
    # Docstrings change a little between Python releases; most pairs must still match.
    same = {e["query"] for e in built} & {e["query"] for e in shipped}
    assert len(same) >= 0.8 * len(shipped)
