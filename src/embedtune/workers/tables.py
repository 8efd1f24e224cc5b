from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from embedtune.core.db import Base, UTCDateTime, utcnow


class WorkerProcess(Base):
    """A live queue worker process; it beats while it runs and removes itself at a stop."""

    __tablename__ = "worker_process"

    #: ``host:pid``, the prefix of the ``worker_id`` of the tasks it runs.
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    #: The training queue it consumes, and how many trainings it runs at once.
    queue: Mapped[str] = mapped_column(String(255))
    slots: Mapped[int] = mapped_column(Integer, default=1)
    current_task_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
