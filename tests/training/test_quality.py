"""The defaults give a clear held-out gain on a domain the base model does not know."""

from __future__ import annotations

from embedtune.training.plugin import ModelSpec, TaskSpec
from embedtune.training.sentence_transformers import SentenceTransformersPlugin
from embedtune.training.synthetic import synthetic_examples

from .helpers import BatchFactory, RecordingReport


def test_default_fine_tuning_beats_the_base_model(
    plugin: SentenceTransformersPlugin,
    base_model: ModelSpec,
    write_batch: BatchFactory,
    report: RecordingReport,
) -> None:
    # 360 training pairs: one epoch of 12 steps at the default batch size of 32.
    batch = write_batch(synthetic_examples(400, seed=11))

    result = plugin.train(TaskSpec(id="task", metadata={}), batch, base_model, report)

    before, after = result.metrics["before"], result.metrics["after"]
    assert result.metrics["improved"]
    # Measured: MRR@10 about 0.65 before and 0.9 after; a wide margin against flakiness.
    assert after["mrr@10"] >= before["mrr@10"] + 0.1
    assert after["ndcg@10"] > before["ndcg@10"]
