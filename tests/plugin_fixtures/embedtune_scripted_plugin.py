"""A plugin whose training is scripted by the task's ``metadata["script"]``.

It stands in for real training in the tests of the task service and the queue: each step
sleeps, reports progress and honours ``should_stop``; every start is logged to
``<work_dir>/../../trainings.log`` so tests can count how often a task really ran.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from embedtune.training.plugin import (
    BatchSpec,
    FineTuningPlugin,
    InvalidModel,
    ModelSpec,
    PluginError,
    TaskSpec,
    TrainingReport,
    TrainingResult,
    TrainingStopped,
)

MODEL_FILE = "model.txt"
SCRIPT_KEYS = {"steps", "step_seconds", "fail", "fail_times"}


def trainings_log(work_dir: Path) -> Path:
    return work_dir.parent.parent / "trainings.log"


def stops_log(work_dir: Path) -> Path:
    return work_dir.parent.parent / "stops.log"


class ScriptedPlugin(FineTuningPlugin):
    def validate_model(self, path: Path) -> None:
        if not (path / MODEL_FILE).is_file():
            raise InvalidModel(f"no {MODEL_FILE} in {path}")

    def validate_training_options(self, metadata: dict[str, Any]) -> None:
        script = metadata.get("script", {})
        if not isinstance(script, dict) or set(script) - SCRIPT_KEYS:
            raise ValueError(f"metadata.script: only {sorted(SCRIPT_KEYS)} are allowed")

    def train(
        self, task: TaskSpec, batch: BatchSpec, base_model: ModelSpec, report: TrainingReport
    ) -> TrainingResult:
        script = task.metadata.get("script", {})
        log = trainings_log(report.work_dir)
        with log.open("a") as handle:
            handle.write(
                json.dumps({"task_id": task.id, "pid": os.getpid(), "at": time.time()}) + "\n"
            )
        starts = sum(
            1 for line in log.read_text().splitlines() if json.loads(line)["task_id"] == task.id
        )
        if script.get("fail") and starts <= script.get("fail_times", 10**9):
            if script["fail"] == "plugin_error":
                raise PluginError("scripted_failure", "the script said so")
            raise RuntimeError("scripted crash")
        steps = int(script.get("steps", 3))
        for step in range(1, steps + 1):
            if report.should_stop():
                (report.work_dir / "stopped_at").write_text(str(step))
                # Beside trainings.log too: a canceled task's work dir is removed at once.
                with stops_log(report.work_dir).open("a") as handle:
                    handle.write(json.dumps({"task_id": task.id, "step": step, "at": time.time()}))
                    handle.write("\n")
                raise TrainingStopped()
            time.sleep(float(script.get("step_seconds", 0.01)))
            report.progress(step / steps, step=step, total_steps=steps, loss=1.0 / step)
        output = report.work_dir / "best"
        output.mkdir(parents=True, exist_ok=True)
        (output / MODEL_FILE).write_text(f"fine-tuned from {base_model.id} by {task.id}\n")
        return TrainingResult(model_dir=output, metrics={"improved": True, "steps": steps})


class ServeOnlyPlugin(ScriptedPlugin):
    can_fine_tune = False


class BatchlessPlugin(ScriptedPlugin):
    """Trains without examples: a task without batch_id releases no feedback for it."""

    requires_batch = False
