"""A real training whose worker is killed resumes from its last checkpoint elsewhere."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from conftest import create_bundled_model_task, wait_for_status

from .helpers import WorkerProcesses, events_of

CHECKPOINT_EVERY = 3


def test_killed_training_resumes_from_its_checkpoint_on_another_worker(
    app_client: TestClient,
    start_workers: Callable[..., WorkerProcesses],
    settings_env: dict[str, str],
    tmp_path: Path,
) -> None:
    workers = start_workers(processes=2, EMBEDTUNE_CHECKPOINT_EVERY=str(CHECKPOINT_EVERY))
    task_id = create_bundled_model_task(
        app_client, tmp_path, pairs=240, seed=3, training={"max_steps": 12, "batch_size": 16}
    )["id"]

    checkpoints = (
        Path(settings_env["EMBEDTUNE_ARTIFACTS_DIR"]).resolve() / "work" / task_id / "checkpoints"
    )
    # A complete checkpoint: the trainer writes its state file last.
    first_checkpoint = _wait_for(
        lambda: [p.parent for p in checkpoints.glob("trial-*/checkpoint-*/trainer_state.json")]
    )
    [claimed] = events_of(app_client, task_id, "claimed")
    os.kill(int(claimed["detail"]["worker_id"].split(":")[1]), signal.SIGKILL)

    done: dict[str, Any] = wait_for_status(app_client, task_id, timeout=180)
    assert done["status"] == "completed", done["error"]
    assert done["attempts"] == 2
    resumed = [line for line in workers.output().splitlines() if "resumes from" in line]
    assert len(resumed) == 1, workers.output()[-3000:]
    step = int(resumed[0].rsplit("checkpoint-", 1)[1].split()[0])
    assert step >= int(first_checkpoint[0].name.split("-")[1]) > 0
    metrics = app_client.get(f"/fine-tuning/task/{task_id}/metrics").json()["metrics"]
    assert metrics["trials"][0]["steps"] == 12
    assert not checkpoints.exists()  # removed once the task completed


def _wait_for(found: Callable[[], list[Path]], timeout: float = 120.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while not (result := found()):
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.1)
    return result
