"""``embedtune worker``: a supervisor process that runs N worker processes.

Each worker process builds the broker from the settings, declares the fine-tuning actor,
consumes with M threads and runs a reaper. SIGTERM or SIGINT stops them gracefully: no new
messages are taken, running trainings are asked to stop (the ShutdownSignal middleware)
and their tasks go back to ``pending`` for another worker. A worker process that dies
unexpectedly (killed, crashed) is started again; its task is recovered by a reaper.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType

from embedtune.core.config import Settings, get_settings
from embedtune.core.errors import EmbedtuneError
from embedtune.migrations import upgrade_database

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
#: How often the worker's threads look up from waiting to notice a stop. New messages do
#: not wait for it: RabbitMQ pushes them, and Redis consumers are woken on enqueue.
STOP_CHECK_MS = 100
#: How long a stopping worker process waits for its trainings to hand their tasks back.
STOP_TIMEOUT_S = 60.0
#: How often the supervisor looks at its children.
SUPERVISE_INTERVAL_S = 0.5
#: A child that keeps dying is restarted no faster than this.
RESTART_DELAY_S = 1.0


class EmbeddedBrokerError(EmbedtuneError):
    code = "embedded_broker"


@dataclass(frozen=True)
class WorkerOptions:
    processes: int = 1
    threads: int = 1
    #: Queues to consume; empty means every queue the worker declares.
    queues: tuple[str, ...] = ()


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (a terminal's Ctrl-C reaches every process)."""
    stop = threading.Event()

    def handle(signum: int, _: FrameType | None) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def run_worker_process(options: WorkerOptions) -> None:
    """One worker process: consume until SIGTERM/SIGINT, then hand running tasks back."""
    stop = _stop_on_signals()
    # Imported here: the training stack takes seconds to import, and the supervisor needs
    # none of it.
    import dramatiq

    from embedtune.core.queue import build_broker
    from embedtune.deployments.waits import TaskDeployer
    from embedtune.fine_tuning.actors import FineTuningQueue
    from embedtune.fine_tuning.reaper import Reaper
    from embedtune.webhooks.delivery import Deliverer
    from embedtune.workers.presence import Presence

    settings = get_settings()
    _configure_logging(settings)
    broker = build_broker(settings)
    queue = FineTuningQueue(broker, settings, TaskDeployer(settings))
    # The training stack is imported now: half a million objects that live as long as the
    # process. Frozen, they leave the collections (each task ends with one) to the objects
    # of the trainings; a full pass over them took 0.3-1 s, during which the worker could
    # take no message.
    gc.collect()
    gc.freeze()
    queues = set(options.queues) or None
    if queues is not None and settings.queue_name not in queues:
        logger.warning(
            "--queues %s leaves out the fine-tuning queue %r: this worker will train nothing",
            sorted(queues),
            settings.queue_name,
        )
    worker = dramatiq.Worker(
        broker, queues=queues, worker_threads=options.threads, worker_timeout=STOP_CHECK_MS
    )
    # One message per thread: a prefetched message would wait behind an hours-long training
    # while another worker idles.
    worker.queue_prefetch = options.threads
    worker.start()
    reaper = Reaper(settings, queue)
    reaper.start()
    # Webhook deliveries have slots of their own: they never wait behind a training.
    slots = options.threads if queues is None or settings.queue_name in queues else 0
    worker_side: list[Presence | Deliverer] = [Presence(settings, slots), Deliverer(settings)]
    for part in worker_side:
        part.start()
    logger.info("worker process ready: %d thread(s) on %s", options.threads, settings.broker_kind)
    stop.wait()
    reaper.stop()
    for part in worker_side:
        part.stop()
    # Emits before_worker_shutdown first: trainings see it, stop and return their tasks.
    worker.stop(timeout=int(STOP_TIMEOUT_S * 1000))
    broker.close()
    logger.info("worker process stopped")


class Supervisor:
    """Keeps ``options.processes`` worker processes running until told to stop."""

    def __init__(self, options: WorkerOptions) -> None:
        self._options = options
        self._context = multiprocessing.get_context("spawn")
        self._children: list[BaseProcess] = []

    def _spawn(self) -> BaseProcess:
        child = self._context.Process(
            target=run_worker_process, args=(self._options,), name="embedtune-worker"
        )
        child.start()
        logger.info("started worker process pid=%s", child.pid)
        return child

    def run(self, stop: threading.Event) -> None:
        self._children = [self._spawn() for _ in range(self._options.processes)]
        while not stop.wait(SUPERVISE_INTERVAL_S):
            for index, child in enumerate(self._children):
                if child.is_alive() or stop.is_set():
                    continue
                logger.warning(
                    "worker process pid=%s died (exit code %s); starting another",
                    child.pid,
                    child.exitcode,
                )
                stop.wait(RESTART_DELAY_S)
                if not stop.is_set():
                    self._children[index] = self._spawn()
        self._stop_children()

    def _stop_children(self) -> None:
        for child in self._children:
            if child.is_alive() and child.pid is not None:
                child.terminate()  # SIGTERM: a graceful stop
        deadline = time.monotonic() + STOP_TIMEOUT_S + 10
        for child in self._children:
            child.join(max(deadline - time.monotonic(), 0))
            if child.is_alive():
                logger.error("worker process pid=%s did not stop in time; killing it", child.pid)
                child.kill()
                child.join()


def check_broker(settings: Settings) -> None:
    """Raises EmbeddedBrokerError when no broker is configured (nothing to share work on)."""
    if settings.broker_kind == "embedded":
        raise EmbeddedBrokerError(
            "embedtune worker needs a shared broker: set EMBEDTUNE_BROKER_URL to redis://… "
            "or amqp://…. With the embedded broker the worker runs inside `embedtune serve`."
        )


def run(processes: int, threads: int, queues: Sequence[str]) -> None:
    """Migrates the database, then supervises the worker processes until SIGTERM/SIGINT.

    Raises EmbeddedBrokerError with the embedded broker, ValueError for a bad broker URL.
    """
    settings = get_settings()
    check_broker(settings)
    _configure_logging(settings)
    stop = _stop_on_signals()
    upgrade_database(settings.database_url)
    Supervisor(WorkerOptions(processes, threads, tuple(queues))).run(stop)
    logger.info("all worker processes stopped")
