from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from embedtune.core.db import Base, UTCDateTime, utcnow
from embedtune.fine_tuning.states import TaskStatus

_STATUSES = ", ".join(f"'{status.value}'" for status in TaskStatus)


class Task(Base):
    __tablename__ = "fine_tuning_task"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    embedding_model_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("embedding_model.id", ondelete="RESTRICT")
    )
    batch_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("training_batch.id", ondelete="RESTRICT")
    )
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.pending.value)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    #: Unique: concurrent creates with one key race on this constraint, not on a lookup.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    #: Hash of the normalized request, to tell a replay from a reuse of the key.
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    deploy_as_blue: Mapped[bool] = mapped_column(Boolean, default=False)
    wait_on_conflict: Mapped[bool] = mapped_column(Boolean, default=False)

    best_model_id: Mapped[str | None] = mapped_column(String(255))
    best_model_url: Mapped[str | None] = mapped_column(String(2048))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    #: Where the training is: step, total_steps, epoch, trial, loss.
    training_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The deploy_as_blue outcome (see ``embedtune.deployments``); null until decided.
    deployment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    #: The only queue message allowed to claim the task; any other one is dropped.
    message_id: Mapped[str] = mapped_column(String(64))
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    #: The broker's id of the message being run, for dramatiq-abort.
    run_id: Mapped[str | None] = mapped_column(String(64))
    #: Set with ``canceled`` in one statement; the running trainer polls it.
    abort_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES})", name="status"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
        Index("ix_fine_tuning_task_created_at_id", "created_at", "id"),
        Index("ix_fine_tuning_task_status_created_at_id", "status", "created_at", "id"),
        #: Queue positions: the pending tasks sent before this one.
        Index("ix_fine_tuning_task_status_dispatched_at_id", "status", "dispatched_at", "id"),
    )


class TaskEvent(Base):
    __tablename__ = "fine_tuning_task_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("fine_tuning_task.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TaskStatusCount(Base):
    """Tasks per status, kept exact by database triggers (see the first migration), so
    ``X-Total-Count`` costs the same at a million tasks as at a thousand."""

    __tablename__ = "fine_tuning_task_status_count"

    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class EventCounter(Base):
    """Running totals of the task events ``/metrics`` reports (claims, recoveries, cancels,
    the dispatch-latency histogram), updated in the transaction that records each event,
    so a scrape reads a few rows however many events there are."""

    __tablename__ = "fine_tuning_event_counter"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)
