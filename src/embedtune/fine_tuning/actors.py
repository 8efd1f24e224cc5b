"""The fine-tuning actor and the queue the services dispatch to."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import CurrentMessage
from dramatiq_abort import Abortable, abort, abort_requested

from embedtune.core.config import Settings
from embedtune.core.queue import ShutdownSignal, middleware_of
from embedtune.fine_tuning.execution import RunContext, run_task_message
from embedtune.fine_tuning.ports import Deployer

#: Training may not start from a message older than this (the reaper re-sends live tasks).
MESSAGE_MAX_AGE_MS = 7 * 24 * 3600 * 1000
#: Grace for a cooperative stop after a cancel before the thread is interrupted.
ABORT_GRACE_MS = 10_000


class FineTuningQueue:
    """Declares ``train_task`` on ``broker`` and sends to it (a ``Dispatcher``)."""

    def __init__(self, broker: dramatiq.Broker, settings: Settings, deployer: Deployer) -> None:
        self.broker = broker
        self._abortable = middleware_of(broker, Abortable)
        shutting_down = middleware_of(broker, ShutdownSignal).stopping

        def train_task(task_id: str, message_id: str) -> None:
            message = CurrentMessage.get_current_message()
            run_id = message.message_id if message is not None else message_id
            run_task_message(
                RunContext(
                    task_id=task_id,
                    message_id=message_id,
                    run_id=run_id,
                    settings=settings,
                    dispatcher=self,
                    deployer=deployer,
                    shutting_down=shutting_down,
                    abort_requested=lambda: abort_requested(middleware=self._abortable) is not None,
                )
            )

        # Retries are ours (EMBEDTUNE_MAX_ATTEMPTS, recorded on the row), not the broker's;
        # Dramatiq's 10-minute time limit would kill any real training.
        self.train_task = dramatiq.actor(
            broker=broker,
            actor_name="train_task",
            queue_name=settings.queue_name,
            max_retries=0,
            time_limit=settings.task_time_limit_s * 1000,
            max_age=MESSAGE_MAX_AGE_MS,
            abortable=True,
        )(train_task)

    def dispatch(self, task_id: str, message_id: str) -> None:
        self.train_task.send(task_id, message_id)

    def abort(self, run_id: str) -> None:
        abort(run_id, middleware=self._abortable, abort_timeout=ABORT_GRACE_MS)
