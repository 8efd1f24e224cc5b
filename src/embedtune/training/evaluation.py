"""Held-out retrieval metrics: each held-out query searched against all held-out positives
(and, during training, distractors from the training documents), scored by the library's
``InformationRetrievalEvaluator``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from sentence_transformers.util import cos_sim

from embedtune.training.data import Example
from embedtune.training.metric_names import METRIC_NAMES as METRIC_NAMES

#: The evaluator's name: its metrics are logged as ``eval_held-out_cosine_mrr@10`` …
EVALUATOR_NAME = "held-out"
_ENCODE_BATCH_SIZE = 64
#: Training documents searched beside the held-out positives, per held-out query and at
#: most. Against its own positives alone a held-out query is too easy: every checkpoint
#: scores near 1, and the "best" one is picked by a single query's rank.
DISTRACTORS_PER_QUERY = 4
MAX_DISTRACTORS = 1_000


def distractors(train: Sequence[Example], held_out: Sequence[Example]) -> list[str]:
    """A stable sample of the distinct training documents that are no held-out positive:
    ``DISTRACTORS_PER_QUERY`` per held-out query, at most ``MAX_DISTRACTORS``."""
    positives = {example.positive for example in held_out}
    documents = {example.positive for example in train} - positives
    wanted = min(MAX_DISTRACTORS, DISTRACTORS_PER_QUERY * len({ex.query for ex in held_out}))
    return sorted(documents, key=lambda text: hashlib.sha256(text.encode()).digest())[:wanted]


def retrieval_evaluator(
    examples: list[Example], distractors: Sequence[str] = ()
) -> InformationRetrievalEvaluator:
    """An evaluator of ``examples`` as a retrieval task (cosine similarity), with
    ``distractors`` in the corpus, relevant to no query.

    Queries and positives are deduplicated by text; a query is relevant to the positives of
    every example that has it. Raises ``ValueError`` when ``examples`` is empty.
    """
    if not examples:
        raise ValueError("cannot evaluate on an empty set of examples")
    queries: dict[str, Any] = {}
    corpus: dict[str, Any] = {}
    relevant: dict[str, set[str]] = {}
    doc_ids: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    for example in examples:
        doc_id = doc_ids.setdefault(example.positive, f"d{len(doc_ids)}")
        corpus[doc_id] = example.positive
        query_id = query_ids.setdefault(example.query, f"q{len(query_ids)}")
        queries[query_id] = example.query
        relevant.setdefault(query_id, set()).add(doc_id)
    for text in distractors:
        corpus.setdefault(doc_ids.setdefault(text, f"d{len(doc_ids)}"), text)
    return InformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        name=EVALUATOR_NAME,
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[1],
        precision_recall_at_k=[1, 10],
        map_at_k=[10],
        batch_size=_ENCODE_BATCH_SIZE,
        show_progress_bar=False,
        write_csv=False,
        score_functions={"cosine": cos_sim},
        main_score_function="cosine",
    )


def metric_names(results: dict[str, float], prefix: str = "") -> dict[str, float]:
    """``METRIC_NAMES`` out of an evaluator's results (keys ``[prefix]held-out_cosine_…``)."""
    head = f"{prefix}{EVALUATOR_NAME}_cosine_"
    return {name: float(results[head + name]) for name in METRIC_NAMES}


def retrieval_metrics(model: SentenceTransformer, examples: list[Example]) -> dict[str, float]:
    """Score ``model`` on ``examples``; returns ``METRIC_NAMES``. Raises ``ValueError`` when
    ``examples`` is empty."""
    return metric_names(retrieval_evaluator(examples)(model))
