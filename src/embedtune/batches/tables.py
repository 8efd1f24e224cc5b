from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from embedtune.core.db import Base, UTCDateTime, utcnow


class Batch(Base):
    __tablename__ = "training_batch"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    #: The normalized JSONL file in the artifact store.
    path: Mapped[str] = mapped_column(Text)
    num_examples: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: ``upload``, or ``feedback`` for a batch released from search feedback.
    source: Mapped[str] = mapped_column(
        String(16), default="upload", server_default=text("'upload'")
    )
    #: A feedback batch's release, and how many sessions and clicks it was made from.
    release_id: Mapped[str | None] = mapped_column(String(255))
    num_sessions: Mapped[int | None] = mapped_column(Integer)
    num_clicks: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_training_batch_created_at_id", "created_at", "id"),)
