"""A dramatiq-abort event backend on the database, for brokers without one (RabbitMQ).

Abort signals then travel through the same database that holds the tasks, so a cancel
reaches a worker on any machine that can reach the database.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from dramatiq_abort import Event, EventBackend
from sqlalchemy import JSON, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from embedtune.core.db import Base, UTCDateTime, new_session, transaction, utcnow

#: How often a waiting worker looks for a signal.
POLL_INTERVAL_S = 0.2


class AbortSignal(Base):
    __tablename__ = "abort_signal"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class DatabaseAbortBackend(EventBackend):  # type: ignore[misc]
    def notify(self, events: Iterable[Event], ttl: int) -> None:
        expires_at = utcnow() + timedelta(milliseconds=ttl)
        with new_session(writer=True) as session, transaction(session):
            session.execute(delete(AbortSignal).where(AbortSignal.expires_at < utcnow()))
            for key, params in events:
                session.merge(AbortSignal(key=key, params=params, expires_at=expires_at))

    def poll(self, key: str) -> Event | None:
        return self._pop([key])

    def wait_many(self, keys: Iterable[str], timeout: int) -> Event | None:
        wanted = list(keys)
        deadline = time.monotonic() + timeout / 1000
        while True:
            event = self._pop(wanted)
            if event is not None or time.monotonic() >= deadline:
                return event
            time.sleep(min(POLL_INTERVAL_S, max(deadline - time.monotonic(), 0)))

    def _pop(self, keys: list[str]) -> Event | None:
        if not keys:
            return None
        with new_session(writer=True) as session, transaction(session):
            signal = session.scalars(
                select(AbortSignal).where(
                    AbortSignal.key.in_(keys), AbortSignal.expires_at >= utcnow()
                )
            ).first()
            if signal is None:
                return None
            # Deleting is the claim: of several pollers only the one that deletes it wins.
            deleted = session.execute(delete(AbortSignal).where(AbortSignal.key == signal.key))
            won = getattr(deleted, "rowcount", 0) == 1
            event = Event(signal.key, dict(signal.params)) if won else None
        return event
