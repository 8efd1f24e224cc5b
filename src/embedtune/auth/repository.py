"""Every query of the API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from embedtune.auth.tables import ApiKey


def insert(session: Session, key: ApiKey) -> None:
    session.add(key)
    session.flush()


def list_all(session: Session) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def hashes_and_revocations(session: Session) -> list[tuple[str, datetime | None]]:
    """``(key_hash, revoked_at)`` of every key."""
    return [(h, r) for h, r in session.execute(select(ApiKey.key_hash, ApiKey.revoked_at))]


def revoke(session: Session, key_id: str, now: datetime) -> bool:
    """Marks an active key revoked; False when no active key has that id."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(ApiKey.id)
    )
    return result.first() is not None


def get(session: Session, key_id: str) -> ApiKey | None:
    return session.get(ApiKey, key_id)
