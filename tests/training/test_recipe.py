"""The recipe's parts for real: each loss, mining, a validation batch, checkpoints, the card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from sentence_transformers import SentenceTransformer

from embedtune.training.data import Example
from embedtune.training.options import HardNegativeOptions
from embedtune.training.plugin import ModelSpec, TaskSpec
from embedtune.training.sentence_transformers import SentenceTransformersPlugin
from embedtune.training.sentence_transformers.mining import mine
from embedtune.training.sentence_transformers.recipe import (
    auto_batch_size,
    auto_epochs,
    auto_learning_rate,
    epoch_cost,
    native_bf16,
    resolve_precision,
)
from embedtune.training.synthetic import synthetic_examples, write_jsonl

from .helpers import BatchFactory, RecordingReport, task

TINY = {"batch_size": 4, "max_steps": 2}


@pytest.mark.parametrize(
    "options",
    [
        {"loss": "mnrl", "precision": "fp32"},
        {"loss": "cached_mnrl", "mini_batch_size": 2},
        {"loss": "gist"},
        {"loss": "symmetric", "matryoshka_dims": [384, 64], "precision": "bf16"},
    ],
    ids=["mnrl", "cached_mnrl", "gist", "symmetric+matryoshka"],
)
def test_each_loss_trains_for_real(
    plugin: SentenceTransformersPlugin,
    base_model: ModelSpec,
    write_batch: BatchFactory,
    report: RecordingReport,
    options: dict[str, Any],
) -> None:
    batch = write_batch(synthetic_examples(24, seed=21, negatives=0.3))

    result = plugin.train(task(**TINY, **options), batch, base_model, report)

    assert [p["step"] for p in result.metrics["loss_curve"]] == [1, 2]
    assert all(p["loss"] == p["loss"] for p in result.metrics["loss_curve"]), "NaN loss"
    assert result.metrics["recipe"]["loss"] == options["loss"]
    if "precision" in options:
        assert result.metrics["recipe"]["precision"] == options["precision"]
    model = SentenceTransformer(str(result.model_dir), device="cpu")
    assert model.encode(["a vesk"]).shape == (1, 384)


def test_mined_negatives_are_not_the_positive_and_respect_the_margin(
    base_model: ModelSpec,
) -> None:
    examples = synthetic_examples(40, seed=22)
    model = SentenceTransformer(str(base_model.path), device="cpu")
    margin = 0.1

    mined = mine(model, examples, HardNegativeOptions(count=2, relative_margin=margin))

    triplets = [ex for ex in mined if ex.negative is not None]
    assert triplets, "nothing mined"
    assert all(ex.negative != ex.positive for ex in triplets)
    positives = {ex.query: ex.positive for ex in examples}
    assert all(ex.negative not in (positives[ex.query],) for ex in triplets)
    queries = model.encode([ex.query for ex in triplets], normalize_embeddings=True)
    pos = model.encode([ex.positive for ex in triplets], normalize_embeddings=True)
    neg = model.encode([ex.negative or "" for ex in triplets], normalize_embeddings=True)
    pos_scores = (queries * pos).sum(axis=1)
    neg_scores = (queries * neg).sum(axis=1)
    assert (neg_scores <= pos_scores * (1 - margin) + 1e-4).all()
    # Every pair is still there: as triplets, or as a pair where nothing passed the guard.
    assert {(ex.query, ex.positive) for ex in mined} == {(ex.query, ex.positive) for ex in examples}


def test_validation_batch_replaces_the_split_and_the_best_checkpoint_is_kept(
    plugin: SentenceTransformersPlugin,
    base_model: ModelSpec,
    write_batch: BatchFactory,
    report: RecordingReport,
    tmp_path: Path,
) -> None:
    batch = write_batch(synthetic_examples(30, seed=23))
    validation_file = tmp_path / "validation.jsonl"
    write_jsonl(synthetic_examples(12, seed=24), validation_file)
    validation = type(batch)(id="validation", path=validation_file, num_examples=12)
    spec = TaskSpec(
        id="ft-card-task",
        metadata={"training": {"batch_size": 8, "max_steps": 3, "eval_steps": 1}},
        validation_batch=validation,
    )

    result = plugin.train(spec, batch, base_model, report)

    metrics = result.metrics
    assert (metrics["train_examples"], metrics["eval_examples"]) == (30, 12)
    assert metrics["eval_source"] == "validation batch validation"
    curve = metrics["eval_curve"]
    assert [p["step"] for p in curve] == [1, 2, 3]
    best = max(curve, key=lambda p: (p["mrr@10"], -p["step"]))
    kept = {c.name: c for c in result.checkpoints}
    best_kept = [c for c in result.checkpoints if c.best]
    assert len(best_kept) == 1 and best_kept[0].step == best["step"]
    assert metrics["after"]["mrr@10"] == best["mrr@10"]
    assert "step-3" in kept and kept["step-3"].last
    for checkpoint in result.checkpoints:
        assert not (checkpoint.model_dir / "optimizer.pt").exists()
        SentenceTransformer(str(checkpoint.model_dir), device="cpu")
    card = (result.model_dir / "README.md").read_text()
    assert "ft-card-task" in card and "all-MiniLM-L6-v2" in card
    assert "30 query" in card and "mrr@10" in card


def test_automatic_defaults_follow_the_data() -> None:
    assert auto_batch_size(4000) == 64
    assert auto_batch_size(300) == 32
    assert auto_batch_size(40) == 8
    assert auto_learning_rate(32) == pytest.approx(5e-5)
    assert auto_learning_rate(8) == pytest.approx(5e-5)
    assert auto_learning_rate(64) > auto_learning_rate(32)
    # Texts of one length: grouping saves nothing, so the budget pays for one epoch.
    assert auto_epochs([(12, 80)] * 100_000, 64) == 1.0
    assert auto_epochs([(12, 80)] * 3_600, 64) == 1.0
    # Small data gets a second epoch whatever the lengths.
    assert auto_epochs([(12, 80)] * 300, 32) == 2.0


def test_automatic_epochs_spend_what_grouping_saves_on_mixed_lengths() -> None:
    # Documents of mixed length: random batches pad to the longest of 32, grouped ones
    # hardly pad, so the same compute pays for more than one epoch (never more than two).
    mixed = [(12, 250 if row % 10 == 0 else 30 + row % 60) for row in range(3_600)]
    assert epoch_cost(mixed, 64, grouped=True) < epoch_cost(mixed, 32, grouped=False) / 1.5
    assert 1.0 < auto_epochs(mixed, 64) <= 2.0
    assert auto_epochs(mixed, 64, grouped=False) == 1.0


def test_examples_keep_their_own_negatives_when_mining(base_model: ModelSpec) -> None:
    examples = [Example("q1", "p1", "own negative"), *synthetic_examples(10, seed=25)]
    model = SentenceTransformer(str(base_model.path), device="cpu")

    mined = mine(model, examples, HardNegativeOptions())

    assert Example("q1", "p1", "own negative") in mined


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ({"avx512_bf16": True, "amx_bf16": False}, "bf16"),
        ({"avx512_bf16": False, "amx_bf16": True}, "bf16"),
        ({"avx512_bf16": False, "amx_bf16": False, "avx2": True}, "fp32"),
    ],
)
def test_automatic_precision_is_bf16_only_where_the_cpu_computes_it(
    monkeypatch: pytest.MonkeyPatch, capabilities: dict[str, bool], expected: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert native_bf16() is (expected == "bf16")
    assert resolve_precision("auto") == expected
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"


def test_bf16_buys_more_epochs_for_the_same_compute() -> None:
    mixed = [(12, 250 if row % 10 == 0 else 30 + row % 60) for row in range(3_600)]
    fp32 = auto_epochs(mixed, 64)
    assert fp32 < auto_epochs(mixed, 64, token_cost=0.65) <= 2.0
