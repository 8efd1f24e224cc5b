"""Every query of the live-worker registry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from embedtune.workers.tables import WorkerProcess


def upsert(session: Session, worker: dict[str, object]) -> None:
    """INSERT … ON CONFLICT: a restarted process with a reused pid takes the row over."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(WorkerProcess).values(**worker)
    updates = {key: statement.excluded[key] for key in worker if key != "id"}
    session.execute(statement.on_conflict_do_update(index_elements=["id"], set_=updates))


def remove(session: Session, worker_id: str) -> None:
    session.execute(delete(WorkerProcess).where(WorkerProcess.id == worker_id))


def list_live(session: Session, beat_after: datetime) -> list[WorkerProcess]:
    query = (
        select(WorkerProcess)
        .where(WorkerProcess.heartbeat_at >= beat_after)
        .order_by(WorkerProcess.started_at, WorkerProcess.id)
    )
    return list(session.scalars(query))


def live_slots(session: Session, queue: str, beat_after: datetime) -> int:
    """Trainings that the live workers of ``queue`` can run at once."""
    query = select(func.coalesce(func.sum(WorkerProcess.slots), 0)).where(
        WorkerProcess.queue == queue, WorkerProcess.heartbeat_at >= beat_after
    )
    return int(session.scalar(query) or 0)


def remove_stale(session: Session, beat_before: datetime) -> None:
    session.execute(delete(WorkerProcess).where(WorkerProcess.heartbeat_at < beat_before))
