"""Every query of the training batches."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from embedtune.batches.tables import Batch


def get(session: Session, batch_id: str) -> Batch | None:
    return session.get(Batch, batch_id)


def list_newest_first(session: Session, offset: int, limit: int) -> list[Batch]:
    query = (
        select(Batch).order_by(Batch.created_at.desc(), Batch.id.desc()).offset(offset).limit(limit)
    )
    return list(session.scalars(query))


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Batch)) or 0)


def insert(session: Session, batch: Batch) -> None:
    session.add(batch)
    session.flush()
