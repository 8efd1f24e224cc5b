"""Real (tiny) trainings through ``SentenceTransformersPlugin.train``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sentence_transformers import SentenceTransformer

from embedtune.training.evaluation import METRIC_NAMES
from embedtune.training.plugin import InvalidModel, ModelSpec, PluginError, TrainingStopped
from embedtune.training.sentence_transformers import SentenceTransformersPlugin
from embedtune.training.synthetic import synthetic_examples

from .helpers import BatchFactory, RecordingReport, ReportFactory, task

TINY = {"batch_size": 8}


def assert_progress_complete(report: RecordingReport) -> None:
    fractions = report.fractions
    assert fractions == sorted(fractions), "progress went backwards"
    assert fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)


def test_train_saves_a_loadable_model_with_metrics(
    plugin: SentenceTransformersPlugin,
    base_model: ModelSpec,
    write_batch: BatchFactory,
    report: RecordingReport,
) -> None:
    batch = write_batch(synthetic_examples(40, seed=1))

    result = plugin.train(task(max_steps=3, **TINY), batch, base_model, report)

    metrics = result.metrics
    assert result.model_dir == report.work_dir / "best"
    SentenceTransformer(str(result.model_dir), device="cpu").encode(["a vesk"])
    for when in ("before", "after"):
        assert set(metrics[when]) == set(METRIC_NAMES)
    assert metrics["improved"] == (metrics["after"]["mrr@10"] > metrics["before"]["mrr@10"])
    assert [p["step"] for p in metrics["loss_curve"]] == [1, 2, 3]
    assert {p["trial"] for p in metrics["loss_curve"]} == {0}
    assert metrics["best_trial"] == 0
    assert len(metrics["trials"]) == 1
    assert (metrics["train_examples"], metrics["eval_examples"]) == (36, 4)
    assert metrics["train_runtime_s"] > 0
    assert_progress_complete(report)
    assert report.steps == [1, 2, 3]
    tokens = [pos["tokens"] for _, pos in report.calls if "tokens" in pos]
    assert len(tokens) == 3 and 0 < tokens[0] < tokens[1] < tokens[2]
    assert not (report.work_dir / "checkpoints").exists()


def test_hard_negatives_train_next_to_plain_pairs(
    plugin: SentenceTransformersPlugin,
    base_model: ModelSpec,
    write_batch: BatchFactory,
    report: RecordingReport,
) -> None:
    examples = synthetic_examples(40, seed=2, negatives=0.5)
    assert any(ex.negative for ex in examples) and not all(ex.negative for ex in examples)

    result = plugin.train(task(max_steps=4, **TINY), write_batch(examples), base_model, report)

    assert len(result.metrics["loss_curve"]) == 4
    assert_progress_complete(report)


def test_stop_ends_within_one_step_and_writes_no_model(
    plugin: SentenceTransformersPlugin,
    base_model: ModelSpec,
    write_batch: BatchFactory,
    new_report: ReportFactory,
) -> None:
    report = new_report(stop_after_step=2)
    batch = write_batch(synthetic_examples(80, seed=3))

    with pytest.raises(TrainingStopped):
        plugin.train(task(max_steps=20, **TINY), batch, base_model, report)

    # should_stop turns true once step 2 is reported; the callback sees it after step 3.
    assert report.steps == [1, 2, 3]
    assert not (report.work_dir / "best").exists()


def test_restart_resumes_from_the_latest_checkpoint(
    plugin: SentenceTransformersPlugin,
    base_model: ModelSpec,
    write_batch: BatchFactory,
    new_report: ReportFactory,
    checkpoint_every: int,
) -> None:
    batch = write_batch(synthetic_examples(80, seed=4))
    first = new_report(stop_after_step=2)
    with pytest.raises(TrainingStopped):
        plugin.train(
            task(max_steps=6, checkpoint_every=checkpoint_every, **TINY), batch, base_model, first
        )
    trial_dir = first.work_dir / "checkpoints" / "trial-0"
    # The periodic checkpoint, and the one taken on stopping.
    checkpoints = sorted(p.name for p in trial_dir.glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-2", "checkpoint-3"]

    second = new_report()
    result = plugin.train(
        task(max_steps=6, checkpoint_every=checkpoint_every, **TINY), batch, base_model, second
    )

    assert second.steps == [4, 5, 6]
    assert [p["step"] for p in result.metrics["loss_curve"]] == [1, 2, 3, 4, 5, 6]
    assert_progress_complete(second)
    assert not (second.work_dir / "checkpoints").exists()


def test_trials_keep_the_best_by_mrr(
    plugin: SentenceTransformersPlugin,
    base_model: ModelSpec,
    write_batch: BatchFactory,
    report: RecordingReport,
) -> None:
    batch = write_batch(synthetic_examples(60, seed=5))

    result = plugin.train(task(max_steps=2, trials=3, **TINY), batch, base_model, report)

    trials = result.metrics["trials"]
    assert [t["params"]["trial"] for t in trials] == [0, 1, 2]
    assert len({t["params"]["learning_rate"] for t in trials}) == 3
    best = max(t["after"]["mrr@10"] for t in trials)
    assert trials[result.metrics["best_trial"]]["after"]["mrr@10"] == best
    assert result.metrics["after"] == trials[result.metrics["best_trial"]]["after"]
    assert {p["trial"] for p in result.metrics["loss_curve"]} == {0, 1, 2}
    # One progress over all trials: 6 steps in all.
    assert report.steps == [1, 2, 3, 4, 5, 6]
    assert {pos.get("total_steps") for _, pos in report.calls} == {6, None}
    assert_progress_complete(report)


def test_one_example_leaves_nothing_to_train_on(
    plugin: SentenceTransformersPlugin,
    base_model: ModelSpec,
    write_batch: BatchFactory,
    report: RecordingReport,
) -> None:
    batch = write_batch(synthetic_examples(1))

    with pytest.raises(PluginError) as error:
        plugin.train(task(), batch, base_model, report)

    assert error.value.code == "empty_train_split"


@pytest.fixture
def broken_model(tmp_path: Path) -> Path:
    path = tmp_path / "broken"
    path.mkdir()
    (path / "config.json").write_text("{not json")
    (path / "modules.json").write_text("[]")
    return path


def test_unloadable_model_is_invalid(
    plugin: SentenceTransformersPlugin,
    base_model: ModelSpec,
    broken_model: Path,
    tmp_path: Path,
    write_batch: BatchFactory,
    report: RecordingReport,
) -> None:
    plugin.validate_model(base_model.path)
    with pytest.raises(InvalidModel):
        plugin.validate_model(broken_model)
    with pytest.raises(InvalidModel):
        plugin.validate_model(tmp_path / "missing")
    with pytest.raises(InvalidModel):
        plugin.train(
            task(max_steps=1),
            write_batch(synthetic_examples(20)),
            ModelSpec(id="broken", path=broken_model),
            report,
        )
