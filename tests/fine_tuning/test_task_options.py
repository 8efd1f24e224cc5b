"""Training and deploy options are checked when a task is created, not later in the worker."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import both_databases
from embedtune.core.db import new_session
from embedtune.core.errors import Unprocessable
from embedtune.fine_tuning.task_options import check_task_options
from embedtune.training.sentence_transformers import SentenceTransformersPlugin

BUNDLED = "all-MiniLM-L6-v2"


def _batch(client: TestClient, size: int) -> str:
    examples = [{"query": f"query {i}", "positive": f"document {i}"} for i in range(size)]
    response = client.post("/batches", json={"name": f"{size} pairs", "examples": examples})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _create(client: TestClient, batch_id: str, metadata: dict[str, Any]) -> Any:
    return client.post(
        "/fine-tuning/task",
        json={"embedding_model_id": BUNDLED, "batch_id": batch_id, "metadata": metadata},
    )


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"training": {"warmup": 0.1}}, "training.warmup: unknown option"),
        ({"training": {"loss": "triplet"}}, "training.loss"),
        ({"training": {"epochs": 0}}, "training.epochs"),
        ({"training": {"hard_negatives": {"count": 0}}}, "training.hard_negatives.count"),
        ({"training": {"matryoshka_dims": [64, 384]}}, "training.matryoshka_dims"),
        ({"training": {"validation_batch_id": "bt-missing"}}, "training.validation_batch_id"),
        ({"epochs": 2}, "put it in metadata.training"),
    ],
)
def test_bad_or_misplaced_training_option_is_422_naming_it(
    app_client: TestClient, metadata: dict[str, Any], named: str
) -> None:
    response = _create(app_client, _batch(app_client, 40), metadata)

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_training_options"
    assert named in response.json()["detail"]


def test_deploy_option_at_the_top_level_is_422_with_a_hint(app_client: TestClient) -> None:
    response = _create(app_client, _batch(app_client, 40), {"require_improvement": False})

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_deploy_options"
    assert "metadata.deploy" in response.json()["detail"]


@both_databases
def test_batch_too_small_to_train_on_is_422_at_create(app_client: TestClient) -> None:
    # 17 pairs: 2 are held out, 15 would train.
    response = _create(app_client, _batch(app_client, 17), {})

    assert response.status_code == 422, response.text
    assert response.json()["code"] == "batch_too_small"
    assert "15" in response.json()["detail"]
    assert app_client.get("/fine-tuning/task").json() == []


def test_free_form_metadata_and_a_validation_batch_pass(app_client: TestClient) -> None:
    plugin = SentenceTransformersPlugin()
    validation = _batch(app_client, 4)
    with new_session() as session:
        check_task_options(session, plugin, {"initiated_by": "admin", "epochs_note": 1}, 40)
        # With a validation batch nothing is held out: 16 pairs are enough.
        check_task_options(session, plugin, {"training": {"validation_batch_id": validation}}, 16)
        with pytest.raises(Unprocessable) as error:
            check_task_options(session, plugin, {}, 16)
    assert error.value.code == "batch_too_small"


def test_openapi_documents_training_and_deploy_options(app_client: TestClient) -> None:
    schema = app_client.get("/openapi.json").json()
    metadata = schema["components"]["schemas"]["TaskCreate"]["properties"]["metadata"]
    documented = metadata["anyOf"][0]["properties"]
    training = documented["training"]["properties"]

    assert {"epochs", "learning_rate", "batch_size", "max_steps", "loss"} <= set(training)
    assert "validation_batch_id" in training
    assert training["loss"]["enum"] == ["mnrl", "cached_mnrl", "gist", "symmetric"]
    assert training["warmup_ratio"]["default"] == 0.1
    assert training["warmup_ratio"]["minimum"] == 0
    assert set(documented["deploy"]["properties"]) == {"require_improvement", "metric"}
