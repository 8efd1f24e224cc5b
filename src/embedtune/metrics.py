"""Prometheus metrics at ``/metrics``, read from the database at scrape time.

Claims, recoveries and cancels happen in worker processes, often on other machines, and
each is recorded as a task event in the same transaction as the move it describes. So
every API process answers a scrape with the same, exact figures by counting those events
(and the per-status counters the triggers keep): nothing is lost when a worker dies, and
no per-process registry needs merging. The cost is a scan of the events on each scrape.
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
from embedtune.fine_tuning import repository
from embedtune.fine_tuning.states import EventKind, TaskStatus

#: Seconds from a task's dispatch (creation, retry, recovery) to a worker's claim.
DISPATCH_LATENCY_BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Counter name (without ``_total``), help, and the event each one counts.
EVENT_COUNTERS = (
    ("embedtune_task_claims", "Tasks claimed by a worker (training starts).", EventKind.claimed),
    (
        "embedtune_task_recoveries",
        "Processing tasks whose worker stopped beating, recovered by a reaper.",
        EventKind.heartbeat_lost,
    ),
    ("embedtune_task_cancels", "Tasks canceled (pending or processing).", EventKind.canceled),
)


class QueueCollector(Collector):
    """Collects the task and queue figures from the database on every scrape."""

    def collect(self) -> Iterator[Metric]:
        with new_session() as session:
            by_status = repository.counts_by_status(session)
            events = repository.count_events_by_kind(session, [kind for *_, kind in EVENT_COUNTERS])
            buckets, total, count = repository.claim_latency_histogram(
                session, DISPATCH_LATENCY_BOUNDS
            )
        tasks = GaugeMetricFamily("embedtune_tasks", "Tasks by status.", labels=["status"])
        for status in TaskStatus:
            tasks.add_metric([status.value], by_status.get(status.value, 0))
        yield tasks
        for name, documentation, kind in EVENT_COUNTERS:
            yield CounterMetricFamily(name, documentation, value=events.get(kind.value, 0))
        yield HistogramMetricFamily(
            "embedtune_queue_dispatch_latency_seconds",
            "Time from a task's dispatch to its claim by a worker.",
            buckets=[
                *(
                    (str(bound), n)
                    for bound, n in zip(DISPATCH_LATENCY_BOUNDS, buckets, strict=True)
                ),
                ("+Inf", count),
            ],
            sum_value=total,
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
