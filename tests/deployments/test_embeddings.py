"""POST /v1/embeddings: OpenAI-shaped output equal to the model's own, limits, batching."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sentence_transformers import SentenceTransformer

from .conftest import BUNDLED, UNNORMALIZED

TEXTS = ["a waterproof backpack for hiking", "red tent", "the quick brown fox jumps"]


def test_embeddings_equal_the_blue_models_own(
    client: TestClient, direct_models: dict[str, SentenceTransformer]
) -> None:
    response = client.post("/v1/embeddings", json={"input": TEXTS})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    assert body["model"] == BUNDLED
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert all(item["object"] == "embedding" for item in body["data"])
    served = np.array([item["embedding"] for item in body["data"]], dtype=np.float32)
    np.testing.assert_allclose(served, direct_models[BUNDLED].encode(TEXTS), atol=1e-5)
    tokens = sum(len(ids) for ids in direct_models[BUNDLED].tokenizer(TEXTS)["input_ids"])
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_base64_encoding_carries_the_same_float32_vectors(client: TestClient) -> None:
    floats = client.post("/v1/embeddings", json={"input": "red tent", "model": "blue"}).json()
    encoded = client.post(
        "/v1/embeddings", json={"input": "red tent", "encoding_format": "base64"}
    ).json()

    vector = np.frombuffer(base64.b64decode(encoded["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_array_equal(vector, np.array(floats["data"][0]["embedding"], "<f4"))


def test_a_model_named_by_id_serves_instead_of_blue(
    client: TestClient, second_model: str, direct_models: dict[str, SentenceTransformer]
) -> None:
    response = client.post("/v1/embeddings", json={"input": TEXTS, "model": second_model})

    assert response.status_code == 200, response.text
    assert response.json()["model"] == UNNORMALIZED
    served = np.array([item["embedding"] for item in response.json()["data"]])
    np.testing.assert_allclose(served, direct_models[UNNORMALIZED].encode(TEXTS), atol=1e-4)
    assert client.get("/deployments").json()["blue"]["model_id"] == BUNDLED


def test_concurrent_requests_each_get_their_own_embeddings(
    client: TestClient, direct_models: dict[str, SentenceTransformer]
) -> None:
    texts = [f"item number {i} of the catalog" for i in range(48)]
    expected = direct_models[BUNDLED].encode(texts)

    def embed(i: int) -> list[float]:
        response = client.post("/v1/embeddings", json={"input": texts[i]})
        assert response.status_code == 200, response.text
        vector: list[float] = response.json()["data"][0]["embedding"]
        return vector

    with ThreadPoolExecutor(16) as pool:
        served = np.array(list(pool.map(embed, range(len(texts)))))

    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_empty_input_is_422(client: TestClient) -> None:
    for body in ({"input": []}, {"input": ""}, {"input": ["ok", "  "]}):
        response = client.post("/v1/embeddings", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "empty_input"


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (["x"] * 2049, "too_many_inputs", "input holds 2049 items; at most 2048"),
        ([[1]] * 2049, "too_many_inputs", "input holds 2049 items; at most 2048"),
        ("x" * 65537, "text_too_long", "input holds 65537 characters; at most 65536"),
        (["ok", "x" * 65537], "text_too_long", "input[1] holds 65537 characters"),
        ([1] * 8193, "too_many_tokens", "input holds 8193 token ids; at most 8192"),
        ([[1], [1] * 8193], "too_many_tokens", "input[1] holds 8193 token ids"),
    ],
)
def test_inputs_over_the_limits_are_one_clear_422_in_openais_envelope(
    client: TestClient, value: object, kind: str, message: str
) -> None:
    response = client.post("/v1/embeddings", json={"input": value})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["param"] == "input"
    assert message in error["message"]
    assert [e["type"] for e in error["errors"]] == [kind]


def test_the_schema_declares_the_input_limits(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["EmbeddingsRequest"]
    shapes = schema["properties"]["input"]["anyOf"]
    assert shapes[0]["maxLength"] == 65536
    assert shapes[1]["maxItems"] == 2048
    assert shapes[1]["items"]["maxLength"] == 65536
    assert shapes[2]["maxItems"] == 8192
    assert shapes[3]["maxItems"] == 2048
    assert shapes[3]["items"]["maxItems"] == 8192


def test_body_over_the_limit_on_v1_is_413_in_openais_envelope(client: TestClient) -> None:
    body = json.dumps({"input": "x" * (1024 * 1024)})
    response = client.post(
        "/v1/embeddings", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert error["type"] == "invalid_request_error"
    assert "1048576 bytes" in error["message"]


def test_text_over_the_token_limit_is_422_naming_it(client: TestClient) -> None:
    long_text = "word " * 400  # about 400 tokens; the model takes 256

    response = client.post("/v1/embeddings", json={"input": ["short", long_text]})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "input_too_long"
    assert "[1]" in response.json()["error"]["message"]
    assert "256" in response.json()["error"]["message"]


def test_unknown_model_is_404_and_unservable_model_is_422(
    client: TestClient, tmp_path: Path
) -> None:
    (tmp_path / "model.txt").write_text("not a transformer\n")
    body = {"id": "scripted", "name": "s", "path": str(tmp_path), "plugin": "scripted"}
    assert client.post("/models", json=body).status_code == 201

    missing = client.post("/v1/embeddings", json={"input": "x", "model": "nope"})
    unservable = client.post("/v1/embeddings", json={"input": "x", "model": "scripted"})

    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    assert unservable.status_code == 422
    assert unservable.json()["error"]["code"] == "model_not_servable"
