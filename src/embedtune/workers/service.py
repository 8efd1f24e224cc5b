"""Who is working: the live worker processes (heartbeat younger than the timeout)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from embedtune.core.config import Settings
from embedtune.core.db import unit_of_work, utcnow
from embedtune.workers import repository
from embedtune.workers.schemas import WorkerOut


@unit_of_work
def list_live(session: Session, settings: Settings) -> list[WorkerOut]:
    since = utcnow() - timedelta(seconds=settings.heartbeat_timeout)
    return [
        WorkerOut(
            id=worker.id,
            host=worker.host,
            pid=worker.pid,
            queue=worker.queue,
            slots=worker.slots,
            current_task_ids=list(worker.current_task_ids),
            current_task_id=worker.current_task_ids[0] if worker.current_task_ids else None,
            started_at=worker.started_at,
            last_heartbeat_at=worker.heartbeat_at,
        )
        for worker in repository.list_live(session, since)
    ]


def live_slots(session: Session, settings: Settings) -> int:
    """Trainings the live workers of the settings' queue can run at once."""
    since = utcnow() - timedelta(seconds=settings.heartbeat_timeout)
    return repository.live_slots(session, settings.queue_name, since)
