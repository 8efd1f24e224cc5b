"""The broker: embedded (in-process), Redis or RabbitMQ, chosen by EMBEDTUNE_BROKER_URL."""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol, TypeVar

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Middleware, TimeLimit, default_middleware
from dramatiq.middleware.time_limit import _CtypesTimeoutManager
from dramatiq_abort import Abortable
from dramatiq_abort.backends import StubBackend

from embedtune.core.config import Settings

M = TypeVar("M", bound=Middleware)
logger = logging.getLogger(__name__)


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


class _StoppableTimeouts(_CtypesTimeoutManager):
    """dramatiq's deadline checker, with an end: its loop checks the deadlines every
    interval until ``stopped`` is set."""

    def __init__(self, interval_ms: int) -> None:
        super().__init__(interval_ms)  # type: ignore[no-untyped-call,unused-ignore]
        self.name = "embedtune-time-limit"
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self._handle_deadlines()  # type: ignore[no-untyped-call,unused-ignore]
            except Exception:
                logger.exception("the time limit check failed")


class WorkerTimeLimit(TimeLimit):
    """dramatiq's ``TimeLimit``, whose checking thread lives as long as the worker.

    dramatiq starts that thread at ``process_boot``, which only its own command line
    emits (so a worker started here would never enforce a limit), and never stops it (so
    each broker of a process that makes several, as tests do, leaves a thread behind
    that wakes every second). Here it starts with the worker and ends with it."""

    def __init__(self, interval_ms: int = 1000) -> None:
        super().__init__(interval=interval_ms)
        self._interval_ms = interval_ms

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        pass  # started with the worker instead

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.manager = timeouts = _StoppableTimeouts(self._interval_ms)
        timeouts.start()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        if isinstance(self.manager, _StoppableTimeouts):
            self.manager.stopped.set()


class WorkerAbortable(Abortable):  # type: ignore[misc]
    """dramatiq-abort's ``Abortable``, whose watcher thread ends with the worker.

    Its own watcher loops forever: each worker started in a process (tests start
    hundreds) left one behind, polling every second and holding the ids of threads that
    had ended, which a later thread may reuse. This one stops at worker shutdown (within a
    poll, unjoined)."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stopped = threading.Event()
        threading.Thread(
            target=self._watch, args=(self._stopped,), name="embedtune-abort-watch", daemon=True
        ).start()

    def _watch(self, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                self._get_abort_requests()
                self.manager.abort_pending()
            except Exception:
                logger.exception("the abort watcher failed")
                stopped.wait(self.wait_timeout / 1000)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stopped.set()


def _middleware() -> list[Middleware]:
    """dramatiq's defaults, with the time limit that ends with its worker."""
    return [WorkerTimeLimit() if kind is TimeLimit else kind() for kind in default_middleware]


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A broker with the abort, current-message and shutdown middleware installed."""
    broker: dramatiq.Broker
    kind = settings.broker_kind
    if kind == "embedded":
        broker = StubBroker(middleware=_middleware())
        abort_backend: Any = StubBackend()
    elif kind == "redis":
        import redis
        from dramatiq_abort.backends import RedisBackend

        from embedtune.core.redis_broker import WakingRedisBroker

        broker = WakingRedisBroker(
            url=settings.broker_url,
            idle_poll_ms=settings.consumer_idle_poll_ms,
            middleware=_middleware(),
        )
        abort_backend = RedisBackend(client=redis.Redis.from_url(settings.broker_url))
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        from embedtune.core.abort_backend import DatabaseAbortBackend

        broker = RabbitmqBroker(url=settings.broker_url, middleware=_middleware())
        abort_backend = DatabaseAbortBackend()
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(WorkerAbortable(backend=abort_backend))
    broker.add_middleware(ShutdownSignal())
    return broker


def middleware_of(broker: dramatiq.Broker, kind: type[M]) -> M:
    for middleware in broker.middleware:
        if isinstance(middleware, kind):
            return middleware
    raise LookupError(f"broker has no {kind.__name__} middleware")
