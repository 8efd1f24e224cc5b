"""Hard negatives mined from the batch's own documents with the base model."""

from __future__ import annotations

import logging

from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives

from embedtune.training.data import Example
from embedtune.training.options import HardNegativeOptions

logger = logging.getLogger(__name__)

#: Candidates looked at beyond ``range_min``, per negative wanted.
CANDIDATES_PER_NEGATIVE = 10


def mine(
    model: SentenceTransformer, examples: list[Example], options: HardNegativeOptions
) -> list[Example]:
    """``examples`` with mined negatives: each pair without its own ``negative`` becomes up to
    ``options.count`` triplets; a pair for which no candidate passes the guard stays a pair.

    The guard against false negatives: a candidate is kept only if the base model scores it
    at least ``relative_margin`` (relative to the positive's score) below the positive, so a
    document as relevant as the positive, or a copy of it, is never used as a negative.
    """
    pairs = [ex for ex in examples if ex.negative is None]
    given = [ex for ex in examples if ex.negative is not None]
    corpus = list(dict.fromkeys(ex.positive for ex in examples))
    if len(corpus) < 2 or not pairs:
        return examples
    mined = mine_hard_negatives(
        Dataset.from_dict(
            {"anchor": [ex.query for ex in pairs], "positive": [ex.positive for ex in pairs]}
        ),
        model,
        corpus=corpus,
        range_min=options.range_min,
        range_max=options.range_min + CANDIDATES_PER_NEGATIVE * options.count,
        relative_margin=options.relative_margin,
        num_negatives=options.count,
        sampling_strategy=options.sampling,
        output_format="triplet",
        batch_size=64,
        verbose=False,
    )
    triplets = [
        Example(row["anchor"], row["positive"], row["negative"])
        for row in mined
        if row["negative"] != row["positive"]
    ]
    covered = {(ex.query, ex.positive) for ex in triplets}
    kept_pairs = [ex for ex in pairs if (ex.query, ex.positive) not in covered]
    logger.info(
        "mined %d hard negatives for %d of %d pairs", len(triplets), len(covered), len(pairs)
    )
    return kept_pairs + triplets + given
