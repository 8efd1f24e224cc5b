from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from embedtune.core.db import Base, UTCDateTime, utcnow


class Webhook(Base):
    __tablename__ = "webhook"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    #: The event types delivered to it (``task.completed``, …).
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(String(1024))
    #: ``whsec_…``: kept to sign every delivery (shown to the user once, at creation).
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One message to one webhook, stored in the transaction of the change it reports and
    sent (again, with the same ``message_id``) until it is delivered or given up."""

    __tablename__ = "webhook_delivery"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The ``webhook-id`` header: the same on every attempt, so receivers can deduplicate.
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    webhook_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("webhook.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    #: The exact body signed and sent on every attempt.
    payload: Mapped[str] = mapped_column(Text)
    #: pending (to send, maybe again), delivered, failed (given up).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(1024))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set by the worker sending it; another may take it over once this has passed.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_webhook_delivery_status_next", "status", "next_attempt_at"),)
