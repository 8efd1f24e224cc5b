"""The broker: embedded (in-process), Redis or RabbitMQ, chosen by EMBEDTUNE_BROKER_URL."""

from __future__ import annotations

import threading
from typing import Any, Protocol, TypeVar

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Middleware
from dramatiq_abort import Abortable
from dramatiq_abort.backends import StubBackend

from embedtune.core.config import Settings

M = TypeVar("M", bound=Middleware)


class Dispatcher(Protocol):
    """What the services need of the queue."""

    def dispatch(self, task_id: str, message_id: str) -> None:
        """Sends the task's message; raises if the broker cannot take it."""
        ...

    def abort(self, run_id: str) -> None:
        """Asks the worker running message ``run_id`` to stop."""
        ...


class ShutdownSignal(Middleware):
    """Sets ``stopping`` when the worker begins to shut down, so trainings can checkpoint
    and hand their task back instead of being killed."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.stopping.clear()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.stopping.set()


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A broker with the abort, current-message and shutdown middleware installed."""
    broker: dramatiq.Broker
    kind = settings.broker_kind
    if kind == "embedded":
        broker = StubBroker()
        broker.emit_after("process_boot")
        abort_backend: Any = StubBackend()
    elif kind == "redis":
        import redis
        from dramatiq_abort.backends import RedisBackend

        from embedtune.core.redis_broker import WakingRedisBroker

        broker = WakingRedisBroker(
            url=settings.broker_url, idle_poll_ms=settings.consumer_idle_poll_ms
        )
        abort_backend = RedisBackend(client=redis.Redis.from_url(settings.broker_url))
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        from embedtune.core.abort_backend import DatabaseAbortBackend

        broker = RabbitmqBroker(url=settings.broker_url)
        abort_backend = DatabaseAbortBackend()
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(Abortable(backend=abort_backend))
    broker.add_middleware(ShutdownSignal())
    return broker


def middleware_of(broker: dramatiq.Broker, kind: type[M]) -> M:
    for middleware in broker.middleware:
        if isinstance(middleware, kind):
            return middleware
    raise LookupError(f"broker has no {kind.__name__} middleware")
