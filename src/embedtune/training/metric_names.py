"""The names of the held-out retrieval metrics, importable without torch (the client and
the wire schemas need them; the evaluation itself lives in ``training.evaluation``)."""

from __future__ import annotations

#: The metric names, as stored in the task's ``before``/``after`` metrics.
METRIC_NAMES = ("mrr@10", "ndcg@10", "recall@1", "recall@10")
