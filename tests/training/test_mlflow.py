"""Each run is logged to MLflow when a tracking URI is set."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from embedtune.training.plugin import ModelSpec
from embedtune.training.sentence_transformers import SentenceTransformersPlugin
from embedtune.training.synthetic import synthetic_examples

from .helpers import BatchFactory, RecordingReport, task


def test_trials_and_best_model_are_logged(
    plugin: SentenceTransformersPlugin,
    base_model: ModelSpec,
    write_batch: BatchFactory,
    report: RecordingReport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracking_uri = (tmp_path / "mlruns").as_uri()
    # A server-less file store keeps the test self-contained; MLflow 3 wants an opt-in.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    batch = write_batch(synthetic_examples(30, seed=6))

    plugin.train(
        task(max_steps=1, trials=2, batch_size=8, mlflow=tracking_uri), batch, base_model, report
    )

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("embedtune")
    runs = client.search_runs([experiment.experiment_id])
    names = sorted(run.info.run_name for run in runs)
    assert names == ["task-task", "trial-0", "trial-1"]
    parent = next(run for run in runs if run.info.run_name == "task-task")
    assert "after_mrr_at_10" in parent.data.metrics
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "model")]
    assert "model/model.safetensors" in artifacts
    # transformers' own callback logged the trial: its training loss and held-out metrics.
    trial = next(run for run in runs if run.info.run_name == "trial-0")
    assert "loss" in trial.data.metrics
    assert "eval_held-out_cosine_mrr_at_10" in trial.data.metrics
