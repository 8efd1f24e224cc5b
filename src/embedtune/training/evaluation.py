"""Held-out retrieval metrics: each held-out query searched against all held-out positives."""

from __future__ import annotations

import math

import torch
from sentence_transformers import SentenceTransformer

from embedtune.training.data import Example
from embedtune.training.metric_names import METRIC_NAMES as METRIC_NAMES

_CUTOFF = 10
_ENCODE_BATCH_SIZE = 64


def retrieval_metrics(model: SentenceTransformer, examples: list[Example]) -> dict[str, float]:
    """Score ``model`` on ``examples`` as a retrieval task; returns ``METRIC_NAMES`` means.

    Queries and positives are deduplicated by text; a query is relevant to the positives of
    every example that has it. Cosine similarity, computed on the model's device. Raises
    ``ValueError`` when ``examples`` is empty.
    """
    if not examples:
        raise ValueError("cannot evaluate on an empty set of examples")
    queries: dict[str, set[int]] = {}
    corpus: dict[str, int] = {}
    for example in examples:
        doc_id = corpus.setdefault(example.positive, len(corpus))
        queries.setdefault(example.query, set()).add(doc_id)

    with torch.inference_mode():
        query_emb = _encode(model, list(queries))
        corpus_emb = _encode(model, list(corpus))
        k = min(_CUTOFF, len(corpus))
        top = torch.topk(query_emb @ corpus_emb.T, k=k, dim=1).indices.cpu().tolist()

    totals = dict.fromkeys(METRIC_NAMES, 0.0)
    for ranked, relevant in zip(top, queries.values(), strict=True):
        hits = [doc in relevant for doc in ranked]
        first = hits.index(True) if True in hits else None
        totals["mrr@10"] += 0.0 if first is None else 1.0 / (first + 1)
        dcg = sum(1.0 / math.log2(rank + 2) for rank, hit in enumerate(hits) if hit)
        ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
        totals["ndcg@10"] += dcg / ideal
        totals["recall@1"] += sum(hits[:1]) / len(relevant)
        totals["recall@10"] += sum(hits) / len(relevant)
    return {name: total / len(queries) for name, total in totals.items()}


def _encode(model: SentenceTransformer, texts: list[str]) -> torch.Tensor:
    return model.encode(
        texts,
        batch_size=_ENCODE_BATCH_SIZE,
        convert_to_tensor=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
