from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from embedtune.db import Base, UTCDateTime, utcnow


class Batch(Base):
    __tablename__ = "training_batch"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    #: The normalized JSONL file in the artifact store.
    path: Mapped[str] = mapped_column(Text)
    num_examples: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_training_batch_created_at_id", "created_at", "id"),)
