"""Prometheus metrics at ``/metrics``, read from the database at scrape time.

Claims, recoveries and cancels happen in worker processes, often on other machines, and
each is recorded as a task event in the same transaction as the move it describes, which
also moves a counter row (``fine_tuning.counters``). So every API process answers a scrape
with the same, exact figures from a few rows (those counters and the per-status counters
the triggers keep): nothing is lost when a worker dies, no per-process registry needs
merging, and a scrape costs the same at ten million events as at a thousand.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from embedtune.db import new_session
from embedtune.fine_tuning import counters, repository
from embedtune.fine_tuning.states import TaskStatus

#: Counter name (without ``_total``), help, and the counter row it reports.
EVENT_COUNTERS = (
    ("embedtune_task_claims", "Tasks claimed by a worker (training starts).", counters.CLAIMS),
    (
        "embedtune_task_recoveries",
        "Processing tasks whose worker stopped beating, recovered by a reaper.",
        counters.RECOVERIES,
    ),
    ("embedtune_task_cancels", "Tasks canceled (pending or processing).", counters.CANCELS),
)


class QueueCollector(Collector):
    """Collects the task and queue figures from the database on every scrape."""

    def collect(self) -> Iterator[Metric]:
        with new_session() as session:
            by_status = repository.counts_by_status(session)
            values = counters.read_all(session)
        tasks = GaugeMetricFamily("embedtune_tasks", "Tasks by status.", labels=["status"])
        for status in TaskStatus:
            tasks.add_metric([status.value], by_status.get(status.value, 0))
        yield tasks
        for name, documentation, counter in EVENT_COUNTERS:
            yield CounterMetricFamily(name, documentation, value=values.get(counter, 0.0))
        yield HistogramMetricFamily(
            "embedtune_queue_dispatch_latency_seconds",
            "Time from a task's dispatch to its claim by a worker.",
            buckets=[
                *(
                    (str(bound), values.get(counters.bucket(bound), 0.0))
                    for bound in counters.DISPATCH_LATENCY_BOUNDS
                ),
                ("+Inf", values.get(counters.LATENCY_COUNT, 0.0)),
            ],
            sum_value=values.get(counters.LATENCY_SUM, 0.0),
        )

    def describe(self) -> Iterator[Metric]:
        # Registering must not query the database (it may not be migrated yet).
        return iter(())


registry = CollectorRegistry(auto_describe=False)
registry.register(QueueCollector())
router = APIRouter(tags=["meta"])


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    """The Prometheus exposition of the task and queue metrics."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
