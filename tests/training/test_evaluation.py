"""The held-out evaluator searches the held-out positives among training documents."""

from __future__ import annotations

from embedtune.training.data import Example
from embedtune.training.evaluation import (
    DISTRACTORS_PER_QUERY,
    distractors,
    retrieval_evaluator,
)


def _examples(prefix: str, count: int) -> list[Example]:
    return [Example(f"{prefix} query {i}", f"{prefix} document {i}") for i in range(count)]


def test_distractors_are_training_documents_that_no_held_out_query_wants() -> None:
    train, held_out = _examples("train", 100), _examples("held", 5)
    # A training pair whose document is also a held-out positive: never a distractor.
    train.append(Example("another query", held_out[0].positive))

    chosen = distractors(train, held_out)

    assert len(chosen) == DISTRACTORS_PER_QUERY * 5
    assert set(chosen) <= {ex.positive for ex in train} - {held_out[0].positive}
    assert len(set(chosen)) == len(chosen)
    # Stable: the same sample whatever the order of the training pairs.
    assert distractors(list(reversed(train)), held_out) == chosen


def test_distractors_are_in_the_corpus_and_relevant_to_no_query() -> None:
    held_out = _examples("held", 3)
    extra = distractors(_examples("train", 50), held_out)

    evaluator = retrieval_evaluator(held_out, extra)

    corpus = dict(zip(evaluator.corpus_ids, evaluator.corpus, strict=True))
    assert len(corpus) == 3 + len(extra)
    relevant = set().union(*evaluator.relevant_docs.values())
    assert {corpus[doc] for doc in relevant} == {ex.positive for ex in held_out}
    assert set(extra) == set(corpus.values()) - {ex.positive for ex in held_out}
