"""Prometheus metrics at ``/metrics``, read from the database at scrape time.

Claims, recoveries and cancels happen in worker processes, often on other machines, and
each is recorded as a task event in the same transaction as the move it describes, which
also moves a counter row (``fine_tuning.counters``). So every API process answers a scrape
with the same, exact figures from a few rows (those counters and the per-status counters
the triggers keep): nothing is lost when a worker dies, no per-process registry needs
merging, and a scrape costs the same at ten million events as at a thousand. One rendering
serves every scrape for ``EMBEDTUNE_METRICS_CACHE_SECONDS``, so scrapers cannot crowd out
the API's own work.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Iterator

from fastapi import APIRouter, Request, Response
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
from embedtune.core.errors import error_responses, render_error
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


class Exposition:
    """The rendered exposition, shared by every scrape.

    A render (database reads and the text of every metric, on a worker thread) serves all
    scrapes for ``max_age`` seconds, and while one is in flight the others wait for it
    instead of starting their own. So any number of scrapers (``/metrics`` needs no API
    key) cost at most one render per ``max_age`` and one thread of the API's pool; each
    scrape costs the event loop what a cached answer costs.
    """

    def __init__(
        self,
        render: Callable[[], bytes],
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._render = render
        self._max_age = max_age
        self._clock = clock
        self._body: bytes | None = None
        self._rendered_at = 0.0
        self._in_flight: asyncio.Future[bytes] | None = None

    async def get(self) -> bytes:
        if self._body is not None and self._clock() - self._rendered_at < self._max_age:
            return self._body
        if self._in_flight is None:
            started = self._clock()
            self._in_flight = asyncio.ensure_future(run_in_threadpool(self._render))
            self._in_flight.add_done_callback(lambda done: self._landed(done, started))
        return await asyncio.shield(self._in_flight)

    def _landed(self, done: asyncio.Future[bytes], started: float) -> None:
        self._in_flight = None
        if not done.cancelled() and done.exception() is None:
            # Its figures are those of when the render started.
            self._body, self._rendered_at = done.result(), started


class MetricsEndpoint:
    """What ``/metrics`` answers with: the shared exposition, behind ``token`` when set."""

    def __init__(self, token: str, max_age: float) -> None:
        self._token = token.encode()
        self.exposition = Exposition(lambda: generate_latest(registry), max_age)

    def allows(self, authorization: str | None) -> bool:
        if not self._token:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._token
        )


@router.get("/metrics", response_class=Response, responses=error_responses(401))
async def metrics(request: Request) -> Response:
    """The Prometheus exposition of the task, queue and process metrics (with
    ``EMBEDTUNE_METRICS_TOKEN`` set, only for ``Authorization: Bearer <that token>``)."""
    endpoint: MetricsEndpoint = request.app.state.metrics
    if not endpoint.allows(request.headers.get("authorization")):
        return render_error(
            request.url.path,
            401,
            "missing or invalid metrics token: send 'Authorization: Bearer <token>'",
            "unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Response(await endpoint.exposition.get(), media_type=CONTENT_TYPE_LATEST)
