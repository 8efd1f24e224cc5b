"""Process metrics for ``/metrics``: HTTP traffic, embeddings, training steps, model loads
and the broker's queue depth.

Unlike the task counters (read from the database, the same in every process), these are
this process's own figures, as Prometheus expects from each scraped process. Labels are
bounded: the route *template* (``/fine-tuning/task/{task_id}``, never the id; requests no
route matched share ``unmatched``), the method and the status code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

registry = CollectorRegistry(auto_describe=True)

LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

HTTP_REQUESTS = Counter(
    "embedtune_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
    registry=registry,
)
HTTP_LATENCY = Histogram(
    "embedtune_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BOUNDS,
    registry=registry,
)
EMBEDDING_REQUESTS = Counter(
    "embedtune_embedding_requests",
    "Embedding requests queued for a model (/v1/embeddings).",
    registry=registry,
)
EMBEDDING_TEXTS = Counter(
    "embedtune_embedding_texts", "Texts queued for embedding.", registry=registry
)
EMBEDDING_REQUEST_TEXTS = Histogram(
    "embedtune_embedding_request_texts",
    "Texts per embedding request.",
    buckets=SIZE_BOUNDS,
    registry=registry,
)
EMBEDDING_BATCH_TEXTS = Histogram(
    "embedtune_embedding_batch_texts",
    "Texts per encode call (concurrent requests grouped by the batcher).",
    buckets=SIZE_BOUNDS,
    registry=registry,
)
TRAINING_STEP = Histogram(
    "embedtune_training_step_seconds",
    "Wall time of one training step, as reported by the running trainings of this process.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
    registry=registry,
)
TRAINING_TOKENS = Counter(
    "embedtune_training_tokens",
    "Input tokens (padding excluded) trained on by the trainings of this process; its "
    "rate is the training throughput in tokens/s.",
    registry=registry,
)
TRAINING_TOKENS_PER_SECOND = Gauge(
    "embedtune_training_tokens_per_second",
    "Tokens/s of the training of this process that reported last, over the steps since "
    "its previous report.",
    registry=registry,
)
MODEL_LOAD = Histogram(
    "embedtune_model_load_seconds",
    "Time to load a model for serving.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
    registry=registry,
)


def observe_embedding_request(texts: int) -> None:
    EMBEDDING_REQUESTS.inc()
    EMBEDDING_TEXTS.inc(texts)
    EMBEDDING_REQUEST_TEXTS.observe(texts)


def observe_encode_batch(texts: int) -> None:
    EMBEDDING_BATCH_TEXTS.observe(texts)


class StepTimer:
    """Turns the progress reports of one training into step times and tokens/s.

    Reports come every few steps; each one records the mean step time since the last, and
    the tokens trained on since then (``tokens`` is the run's running total).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: tuple[int, float, int | None] | None = None

    def step(self, step: int | None, tokens: int | None = None) -> None:
        if step is None:
            return
        now = self._clock()
        if self._last is not None and step <= self._last[0]:
            return
        if self._last is not None:
            last_step, last_time, last_tokens = self._last
            steps = step - last_step
            mean = (now - last_time) / steps
            for _ in range(min(steps, 1000)):
                TRAINING_STEP.observe(mean)
            if tokens is not None and last_tokens is not None and tokens >= last_tokens:
                TRAINING_TOKENS.inc(tokens - last_tokens)
                if now > last_time:
                    TRAINING_TOKENS_PER_SECOND.set((tokens - last_tokens) / (now - last_time))
        self._last = (step, now, tokens)


class QueueDepth(Collector):
    """``embedtune_queue_depth``: messages waiting in the broker, asked at scrape time."""

    def __init__(self, depth: Callable[[], dict[str, int]]) -> None:
        self._depth = depth

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "embedtune_queue_depth",
            "Messages waiting in the broker's queue for a worker.",
            labels=["queue"],
        )
        try:
            depths = self._depth()
        except Exception:  # an unreachable broker must not break the whole scrape
            depths = {}
        for queue, depth in sorted(depths.items()):
            gauge.add_metric([queue], depth)
        yield gauge

    def describe(self) -> Iterator[Metric]:
        return iter(())


def broker_queue_depth(broker: Any) -> dict[str, int]:
    """Waiting messages per queue of a Dramatiq broker (embedded, Redis or RabbitMQ)."""
    names = sorted(broker.get_declared_queues())
    if hasattr(broker, "get_queue_message_counts"):  # RabbitMQ
        return {name: broker.get_queue_message_counts(name)[0] for name in names}
    if hasattr(broker, "client") and hasattr(broker, "namespace"):  # Redis
        return {name: int(broker.client.llen(f"{broker.namespace}:{name}")) for name in names}
    return {name: broker.queues[name].qsize() for name in names}  # the embedded StubBroker


def watch_queue(broker: Any) -> None:
    """Reports ``broker``'s queue depth from now on (replacing an earlier broker's)."""
    global _queue_collector
    if _queue_collector is not None:
        registry.unregister(_queue_collector)
    _queue_collector = QueueDepth(lambda: broker_queue_depth(broker))
    registry.register(_queue_collector)


_queue_collector: QueueDepth | None = None


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class HttpMetrics:
    """ASGI middleware counting and timing every HTTP request by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = _route_of(scope)
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - start)
