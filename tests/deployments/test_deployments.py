"""/deployments: the blue model, switching, rollback, the model cache, and clients."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import openai
import pytest
from fastapi.testclient import TestClient
from sentence_transformers import SentenceTransformer

from embedtune.core.config import get_settings

from .conftest import BUNDLED, UNNORMALIZED


def test_bundled_model_is_blue_at_start(client: TestClient) -> None:
    body = client.get("/deployments").json()

    assert body["blue"]["model_id"] == BUNDLED
    assert body["history"] == []


def test_put_blue_switches_the_live_model_and_records_history(
    client: TestClient, second_model: str, direct_models: dict[str, SentenceTransformer]
) -> None:
    response = client.put("/deployments/blue", json={"model_id": second_model})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["blue"]["model_id"] == UNNORMALIZED
    assert [p["model_id"] for p in body["history"]] == [BUNDLED]
    assert body["history"][0]["until"] == body["blue"]["since"]
    assert UNNORMALIZED in body["loaded"]
    served = client.post("/v1/embeddings", json={"input": "red tent"}).json()
    assert served["model"] == UNNORMALIZED
    np.testing.assert_allclose(
        served["data"][0]["embedding"], direct_models[UNNORMALIZED].encode("red tent"), atol=1e-4
    )


def test_rollback_restores_the_previous_blue(client: TestClient, second_model: str) -> None:
    client.put("/deployments/blue", json={"model_id": second_model})

    response = client.post("/deployments/rollback")

    assert response.status_code == 200, response.text
    assert response.json()["blue"]["model_id"] == BUNDLED
    assert [p["model_id"] for p in response.json()["history"]] == [UNNORMALIZED, BUNDLED]
    assert client.post("/v1/embeddings", json={"input": "x"}).json()["model"] == BUNDLED


def test_rollback_without_a_previous_blue_is_409(client: TestClient) -> None:
    response = client.post("/deployments/rollback")

    assert response.status_code == 409
    assert response.json()["code"] == "no_previous_blue"


def test_put_blue_of_unknown_model_is_404_and_keeps_blue(client: TestClient) -> None:
    response = client.put("/deployments/blue", json={"model_id": "nope"})

    assert response.status_code == 404
    assert client.get("/deployments").json()["blue"]["model_id"] == BUNDLED


def test_least_recently_used_model_is_unloaded(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, unnormalized_dir: object
) -> None:
    monkeypatch.setenv("EMBEDTUNE_MAX_LOADED_MODELS", "1")
    get_settings.cache_clear()
    from embedtune.app import create_app

    with TestClient(create_app()) as client:
        body = {"id": UNNORMALIZED, "name": "u", "path": str(unnormalized_dir)}
        assert client.post("/models", json=body).status_code == 201
        client.post("/v1/embeddings", json={"input": "x"})
        assert client.get("/deployments").json()["loaded"] == [BUNDLED]

        client.post("/v1/embeddings", json={"input": "x", "model": UNNORMALIZED})
        assert client.get("/deployments").json()["loaded"] == [UNNORMALIZED]

        # Blue was unloaded; asking for it loads it again.
        assert client.post("/v1/embeddings", json={"input": "x"}).json()["model"] == BUNDLED
        assert client.get("/deployments").json()["loaded"] == [BUNDLED]


def test_no_request_fails_while_blue_switches_under_load(
    client: TestClient, second_model: str, direct_models: dict[str, SentenceTransformer]
) -> None:
    texts = ["a waterproof backpack", "red tent", "headlamp for night hikes"]
    expected = {name: model.encode(texts) for name, model in direct_models.items()}
    stop = threading.Event()
    failures: list[str] = []
    served_by: Counter[str] = Counter()

    def hammer() -> None:
        while not stop.is_set():
            response = client.post("/v1/embeddings", json={"input": texts})
            if response.status_code != 200:
                failures.append(response.text)
                continue
            body = response.json()
            served_by[body["model"]] += 1
            vectors = np.array([item["embedding"] for item in body["data"]])
            # The whole request came from one model: all its vectors match that model.
            if not np.allclose(vectors, expected[body["model"]], atol=1e-4):
                failures.append(f"mixed or wrong embeddings from {body['model']}")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        for target in [UNNORMALIZED, BUNDLED] * 3:
            time.sleep(0.3)
            switched = client.put("/deployments/blue", json={"model_id": target})
            assert switched.status_code == 200, switched.text
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert failures == []
    assert served_by[BUNDLED] > 0 and served_by[UNNORMALIZED] > 0
    assert len(client.get("/deployments").json()["history"]) == 6


def test_official_openai_client_gets_the_blue_embeddings(
    client: TestClient, direct_models: dict[str, SentenceTransformer]
) -> None:
    texts = ["a waterproof backpack", "red tent"]
    openai_client = openai.OpenAI(
        base_url=f"{client.base_url}/v1", api_key="unused", http_client=client
    )

    result = openai_client.embeddings.create(model="blue", input=texts)

    assert result.model == BUNDLED
    assert [item.index for item in result.data] == [0, 1]
    vectors = np.array([item.embedding for item in result.data])
    np.testing.assert_allclose(vectors, direct_models[BUNDLED].encode(texts), atol=1e-5)
    assert result.usage.prompt_tokens > 0
