"""What a worker does with a claimed task: run its plugin and record the outcome."""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedtune.batches import service as batches
from embedtune.core import artifacts, telemetry
from embedtune.core.config import Settings
from embedtune.core.db import new_session, transaction
from embedtune.core.ids import new_id
from embedtune.core.queue import Dispatcher
from embedtune.fine_tuning import checkpoints, running
from embedtune.fine_tuning.ports import Deployer
from embedtune.fine_tuning.progress import PROGRESS_INTERVAL_S, ProgressJournal
from embedtune.fine_tuning.states import EventKind, TaskStatus
from embedtune.fine_tuning.tables import Task
from embedtune.fine_tuning.task_spec import task_spec
from embedtune.models import service as models
from embedtune.training.plugin import (
    BatchSpec,
    ModelSpec,
    PluginError,
    TrainingResult,
    TrainingStopped,
)
from embedtune.workers import presence

logger = logging.getLogger(__name__)

#: How often the monitor reads the row to notice a cancel, when no abort signal came.
STOP_POLL_INTERVAL_S = 0.5


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


@dataclass(frozen=True)
class RunContext:
    """One message's run: which it is, and what the worker process lends it."""

    task_id: str
    message_id: str
    #: The broker's id of this delivery: what a cancel aborts.
    run_id: str
    settings: Settings
    dispatcher: Dispatcher
    deployer: Deployer
    shutting_down: threading.Event
    abort_requested: Callable[[], bool]


class TaskReport:
    """The plugin's ``report``: progress in memory, written (row and stream events, at a
    bounded rate) by a monitor thread that also heartbeats and notices when the task stops
    being this worker's (canceled, recovered)."""

    def __init__(self, task: Task, context: RunContext) -> None:
        self._task_id = task.id
        self._message_id = task.message_id
        self._context = context
        self._work_dir = artifacts.task_work_dir(task.id)
        self._journal = ProgressJournal()
        self._steps = telemetry.StepTimer()
        self._lost = threading.Event()
        self._done = threading.Event()
        self._monitor = threading.Thread(
            target=self._run_monitor, name=f"monitor-{task.id}", daemon=True
        )

    @property
    def work_dir(self) -> Path:
        return self._work_dir

    @property
    def canceled_or_lost(self) -> bool:
        return self._lost.is_set()

    def progress(
        self,
        fraction: float,
        *,
        step: int | None = None,
        total_steps: int | None = None,
        epoch: float | None = None,
        trial: int | None = None,
        loss: float | None = None,
        learning_rate: float | None = None,
        tokens: int | None = None,
    ) -> None:
        state = {
            "step": step,
            "total_steps": total_steps,
            "epoch": epoch,
            "trial": trial,
            "loss": loss,
            "learning_rate": learning_rate,
        }
        self._steps.step(step, tokens)
        position = {key: value for key, value in state.items() if value is not None}
        self._journal.progress(fraction, position)

    def evaluated(
        self, metrics: dict[str, float], *, step: int | None = None, epoch: float | None = None
    ) -> None:
        detail: dict[str, Any] = {"metrics": metrics, "step": step, "epoch": epoch}
        self._journal.add(EventKind.evaluated, {k: v for k, v in detail.items() if v is not None})

    def checkpoint_saved(self, step: int, *, name: str | None = None) -> None:
        detail: dict[str, Any] = {"step": step, "name": name}
        self._journal.add(
            EventKind.checkpoint_saved, {k: v for k, v in detail.items() if v is not None}
        )

    def should_stop(self) -> bool:
        return (
            self._lost.is_set()
            or self._context.shutting_down.is_set()
            or self._context.abort_requested()
        )

    def __enter__(self) -> TaskReport:
        presence.task_started(self._task_id)
        self._monitor.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._monitor.join()
        presence.task_finished(self._task_id)
        if not self._lost.is_set():
            try:
                self._beat()  # the last progress of the run always reaches the stream
            except Exception:
                logger.exception("last progress of task_id=%s not recorded", self._task_id)

    def _beat(self) -> None:
        progress, state, events = self._journal.take()
        with new_session(writer=True) as session, transaction(session):
            alive = running.heartbeat(
                session, self._task_id, self._message_id, progress, state, events
            )
        if not alive:
            logger.info("task_id=%s is no longer ours to run; stopping", self._task_id)
            self._lost.set()

    def _still_ours(self) -> bool:
        with new_session() as session:
            return running.is_running(session, self._task_id, self._message_id)

    def _run_monitor(self) -> None:
        last_beat = last_check = 0.0
        beat_every = self._context.settings.heartbeat_interval
        while not self._done.wait(PROGRESS_INTERVAL_S):
            try:
                now = time.monotonic()
                if self._journal.due() or now - last_beat >= beat_every:
                    self._beat()  # progress events and the heartbeat, in one transaction
                    last_beat = last_check = now
                elif now - last_check >= STOP_POLL_INTERVAL_S:
                    last_check = now
                    if not self._still_ours():
                        self._lost.set()
            except Exception:
                logger.exception("heartbeat of task_id=%s failed", self._task_id)


def _train(task: Task, report: TaskReport, settings: Settings) -> tuple[TrainingResult, str, str]:
    with new_session() as session:
        model = models.get_model(session, task.embedding_model_id)
        batch = batches.get_batch(session, task.batch_id) if task.batch_id is not None else None
    plugin = models.require_plugin(model.plugin, for_training=True)
    batch_spec = (
        BatchSpec(
            id=batch.id,
            path=artifacts.local_batch_file(batch.path),
            num_examples=batch.num_examples,
        )
        if batch is not None
        else BatchSpec(id="", path=Path(os.devnull), num_examples=0)
    )
    result = plugin.train(
        task_spec(task, plugin, settings),
        batch_spec,
        ModelSpec(id=model.id, path=artifacts.local_model_dir(model.path)),
        report,
    )
    return result, model.id, model.plugin


class _NotCompleted(Exception):
    """The run lost its task before completing it (canceled, or claimed by another)."""


def _record_success(
    task: Task, result: TrainingResult, base_model_id: str, plugin: str, context: RunContext
) -> bool:
    model_id = new_id("ftm-")
    path = artifacts.store_model(result.model_dir, model_id)
    metrics = checkpoints.store(task.id, result)
    url = f"{context.settings.base_url}/models/{model_id}/download"
    try:
        with new_session(writer=True) as session, transaction(session):
            models.register_fine_tuned(
                session,
                model_id=model_id,
                path=path,
                plugin=plugin,
                parent_id=base_model_id,
                task_id=task.id,
                metrics=metrics,
            )
            if not running.complete_task(session, task, model_id, url, metrics):
                raise _NotCompleted  # the unit rolls back: the registration goes with it
    except _NotCompleted:
        artifacts.remove_model(model_id)
        checkpoints.remove(task.id, result)
        return False
    # After the completion commit: a failed deployment never fails the task.
    context.deployer.after_completion(task.id)
    return True


def run_task_message(context: RunContext) -> None:
    """Claims the task for this message and trains it; every outcome is recorded."""
    task_id = context.task_id
    with new_session(writer=True) as session, transaction(session):
        task = running.claim_task(session, task_id, context.message_id, worker_id(), context.run_id)
    if task is None:
        return
    logger.info("training task_id=%s attempt=%d", task_id, task.attempts)
    try:
        with TaskReport(task, context) as report:
            try:
                result, base_model_id, plugin = _train(task, report, context.settings)
            except TrainingStopped:
                _after_stop(task, report, context)
                return
            except PluginError as exc:
                _fail(task, exc.code, exc.message, retryable=False, context=context)
                return
            except Exception as exc:
                logger.exception("training of task_id=%s failed", task_id)
                _fail(
                    task,
                    "training_error",
                    f"{type(exc).__name__}: {exc}",
                    retryable=True,
                    context=context,
                )
                return
        if _record_success(task, result, base_model_id, plugin, context):
            artifacts.remove_task_work_dir(task_id)
            logger.info("task_id=%s completed", task_id)
        else:
            logger.info(
                "task_id=%s finished training but was canceled meanwhile; result dropped", task_id
            )
    finally:
        gc.collect()


def _after_stop(task: Task, report: TaskReport, context: RunContext) -> None:
    if context.shutting_down.is_set() and not report.canceled_or_lost:
        with new_session(writer=True) as session, transaction(session):
            if running.return_task(session, task, "worker_shutdown", context.dispatcher):
                logger.info("task_id=%s returned to pending: worker shutting down", task.id)
                return
    with new_session() as session:
        status = running.status_of(session, task.id)
    # A task recovered by another worker keeps its checkpoints; a canceled one needs none.
    if status == TaskStatus.canceled:
        artifacts.remove_task_work_dir(task.id)
    logger.info("task_id=%s stopped", task.id)


def _fail(task: Task, code: str, message: str, *, retryable: bool, context: RunContext) -> None:
    with new_session(writer=True) as session, transaction(session):
        outcome = running.fail_or_retry(
            session,
            task,
            code,
            message,
            retryable=retryable,
            max_attempts=context.settings.max_attempts,
            dispatcher=context.dispatcher,
        )
    logger.info("task_id=%s failed with %s; now %s", task.id, code, outcome)
