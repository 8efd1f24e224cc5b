"""The deterministic train/held-out split and the batch loader."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

from embedtune.training.data import Example, eval_size, load_examples, split_examples
from embedtune.training.synthetic import synthetic_examples, write_jsonl


def test_split_is_the_same_for_any_order() -> None:
    examples = synthetic_examples(200, seed=3)
    shuffled = examples[:]
    random.Random(0).shuffle(shuffled)

    first, second = split_examples(examples), split_examples(shuffled)

    assert set(first.eval) == set(second.eval)
    assert set(first.train) == set(second.train)
    assert len(first.eval) == 20
    assert set(first.train).isdisjoint(first.eval)


def test_split_is_the_same_in_another_process() -> None:
    """The hash must not be Python's salted ``hash()``: another interpreter agrees."""
    examples = synthetic_examples(50, seed=4)
    code = (
        "from embedtune.training.data import split_examples;"
        "from embedtune.training.synthetic import synthetic_examples;"
        "print(sorted(e.key for e in split_examples(synthetic_examples(50, seed=4)).eval))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PYTHONPATH": ":".join(sys.path)},
    )

    assert other.stdout.strip() == str(sorted(e.key for e in split_examples(examples).eval))


def test_duplicates_stay_on_one_side() -> None:
    examples = synthetic_examples(30, seed=5)
    split = split_examples(examples + examples)

    assert all(ex not in split.train for ex in split.eval)
    assert len(split.eval) == 2 * eval_size(30)


def test_eval_size_bounds() -> None:
    assert eval_size(1) == 1
    assert eval_size(4) == 1
    assert eval_size(100) == 10
    assert eval_size(4_000) == 400
    assert eval_size(1_000_000) == 2_000


def test_load_examples_reads_optional_negatives(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    examples = [Example("q1", "p1"), Example("q2", "p2", "n2")]
    write_jsonl(examples, path)
    path.write_text(path.read_text() + '\n{"query": "q3", "positive": "p3"}\n')

    assert load_examples(path) == [*examples, Example("q3", "p3")]


def test_resume_skips_a_checkpoint_that_was_cut_off(tmp_path: Path) -> None:
    from embedtune.training.sentence_transformers import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path) is None
    for step, state in ((3, "{}"), (6, "{}"), (9, None), (12, '{"trunc')):
        checkpoint = tmp_path / f"checkpoint-{step}"
        checkpoint.mkdir()
        if state is not None:
            (checkpoint / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-6")
