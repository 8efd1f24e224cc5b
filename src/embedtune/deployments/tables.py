"""The blue slot, its history, and the deployments that wait their turn."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from embedtune.core.db import Base, UTCDateTime, utcnow

BLUE = "blue"


class DeploymentSlot(Base):
    """The live model of a slot (only ``blue`` today): the row every API process reads.

    ``version`` grows with every switch, so a process tells a new blue from the one it serves
    with one integer. ``lock_token`` marks a deployment in progress (loading, evaluating);
    a lock past ``lock_expires_at`` was abandoned by a dead process and may be taken.
    """

    __tablename__ = "deployment_slot"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("embedding_model.id", ondelete="RESTRICT")
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lock_token: Mapped[str | None] = mapped_column(String(64))
    lock_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Deployment(Base):
    """One period during which a model was blue; ``until`` is null for the current one."""

    __tablename__ = "deployment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("embedding_model.id", ondelete="RESTRICT")
    )
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: What made it blue: ``initial``, ``manual``, ``rollback`` or ``task``.
    reason: Mapped[str] = mapped_column(String(16))
    #: The fine-tuning task that deployed it, if any.
    task_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_deployment_until", "until"),)


class DeploymentWait(Base):
    """A finished task's deployment waiting for its turn (``wait_on_conflict``).

    Picked up by the periodic loop of every API process; ``claimed_until`` is the lease of
    the process deciding it, so a dead process's claim lapses.
    """

    __tablename__ = "deployment_wait"

    task_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("fine_tuning_task.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("embedding_model.id", ondelete="CASCADE")
    )
    wait_until: Mapped[datetime] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelExport(Base):
    """The ONNX/OpenVINO export of one model: made once, by one process, then reused.

    ``status`` moves ``pending → running → ready | failed`` (``not_needed`` where torch
    serves anyway). ``claimed_by``/``heartbeat_at`` tell a running export from one whose
    process died, which another process may take over.
    """

    __tablename__ = "model_export"

    model_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("embedding_model.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    #: The directory holding ``onnx/``, ``openvino/`` and ``export.json``.
    directory: Mapped[str | None] = mapped_column(Text)
    #: The quality check's figures per variant (see ``export.json``).
    quality: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
