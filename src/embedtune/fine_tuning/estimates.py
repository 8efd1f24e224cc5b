"""Why a task waits and when it will finish: its place in the queue and estimates measured
from this run's step rate or from recent runs, never invented (null when unknown)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from embedtune.core.config import Settings
from embedtune.core.db import unit_of_work, utcnow
from embedtune.fine_tuning import repository
from embedtune.fine_tuning.states import TaskStatus
from embedtune.fine_tuning.tables import Task
from embedtune.workers import service as workers

#: Completed runs that the duration estimates are averaged over.
RECENT_RUNS = 20


@dataclass(frozen=True)
class Estimate:
    queue_position: int | None = None
    estimated_start_at: datetime | None = None
    estimated_finish_at: datetime | None = None

    def as_update(self) -> dict[str, Any]:
        return {
            "queue_position": self.queue_position,
            "estimated_start_at": self.estimated_start_at,
            "estimated_finish_at": self.estimated_finish_at,
        }


def queue_position(session: Session, task: Task) -> int | None:
    """1 for the pending task a free worker claims next: the broker hands messages out in
    the order they were sent, so the pending tasks dispatched before it are ahead."""
    if task.status != TaskStatus.pending or task.dispatched_at is None:
        return None
    ahead = select(func.count()).where(
        Task.status == TaskStatus.pending.value,
        Task.dispatched_at.is_not(None),
        or_(
            Task.dispatched_at < task.dispatched_at,
            and_(Task.dispatched_at == task.dispatched_at, Task.id < task.id),
        ),
    )
    return int(session.scalar(ahead) or 0) + 1


def _batch_size(metadata: dict[str, Any] | None) -> Any:
    training = (metadata or {}).get("training")
    return training.get("batch_size") if isinstance(training, dict) else None


def recent_duration(session: Session, model_id: str | None, batch_size: Any = None) -> float | None:
    """Mean seconds of the latest completed runs (of ``model_id`` with ``batch_size`` when
    given); None without any."""
    query = select(Task.started_at, Task.finished_at, Task.metadata_).where(
        Task.status == TaskStatus.completed.value
    )
    if model_id is not None:
        query = query.where(Task.embedding_model_id == model_id)
    rows = session.execute(query.order_by(Task.created_at.desc()).limit(RECENT_RUNS))
    durations = [
        (finished - started).total_seconds()
        for started, finished, metadata in rows
        if started is not None
        and finished is not None
        and (model_id is None or _batch_size(metadata) == batch_size)
    ]
    return fmean(durations) if durations else None


def _finish_from_state(task: Task) -> datetime | None:
    value = (task.training_state or {}).get("estimated_finish_at")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


@unit_of_work
def estimate(session: Session, tasks: Sequence[Task], settings: Settings) -> dict[str, Estimate]:
    """The estimates of the pending and processing ones among ``tasks``, by task id."""
    live = [task for task in tasks if task.status in (TaskStatus.pending, TaskStatus.processing)]
    if not live:
        return {}
    now = utcnow()
    slots: int | None = None
    busy = 0
    any_duration: float | None = None
    estimates: dict[str, Estimate] = {}
    for task in live:
        same_runs = recent_duration(session, task.embedding_model_id, _batch_size(task.metadata_))
        if task.status == TaskStatus.processing:
            finish = _finish_from_state(task)
            if finish is None and same_runs is not None and task.started_at is not None:
                finish = task.started_at + timedelta(seconds=same_runs)
            estimates[task.id] = Estimate(estimated_finish_at=finish)
            continue
        position = queue_position(session, task)
        if slots is None:
            slots = workers.live_slots(session, settings)
            busy = repository.counts_by_status(session).get(TaskStatus.processing.value, 0)
            any_duration = recent_duration(session, None)
        start: datetime | None = None
        if position is not None and slots > 0:
            free = max(slots - busy, 0)
            if position <= free:
                start = now
            elif any_duration is not None:
                start = now + timedelta(seconds=math.ceil((position - free) / slots) * any_duration)
        finish = start + timedelta(seconds=same_runs) if start and same_runs else None
        estimates[task.id] = Estimate(position, start, finish)
    return estimates
