"""Prometheus metrics at ``/metrics``, read from the database at scrape time.

Claims, recoveries and cancels happen in worker processes, often on other machines, and
each is recorded as a task event in the same transaction as the move it describes, which
also moves a counter row (``fine_tuning.counters``). So every API process answers a scrape
with the same, exact figures from a few rows (those counters and the per-status counters
the triggers keep): nothing is lost when a worker dies, no per-process registry needs
merging, and a scrape costs the same at ten million events as at a thousand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from embedtune.core.db import new_session
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


class SingleFlight:
    """Concurrent scrapes share one reading: while one is in flight, the others wait for it
    instead of each taking a worker thread and a database connection. So any number of
    scrapers (``/metrics`` needs no key) hold at most one thread of the API's pool."""

    def __init__(self, read: Callable[[], bytes]):
        self._read = read
        self._in_flight: asyncio.Future[bytes] | None = None

    async def get(self) -> bytes:
        if self._in_flight is None:
            self._in_flight = asyncio.ensure_future(run_in_threadpool(self._read))
            self._in_flight.add_done_callback(self._landed)
        return await asyncio.shield(self._in_flight)

    def _landed(self, _: asyncio.Future[bytes]) -> None:
        self._in_flight = None


_exposition = SingleFlight(lambda: generate_latest(registry))


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """The Prometheus exposition of the task and queue metrics."""
    return Response(await _exposition.get(), media_type=CONTENT_TYPE_LATEST)
