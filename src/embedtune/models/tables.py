from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from embedtune.core.db import Base, UTCDateTime, utcnow


class EmbeddingModel(Base):
    __tablename__ = "embedding_model"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    #: A directory the model's plugin can load.
    path: Mapped[str] = mapped_column(Text)
    plugin: Mapped[str] = mapped_column(String(255))
    parent_id: Mapped[str | None] = mapped_column(
        String(255), ForeignKey("embedding_model.id", ondelete="SET NULL")
    )
    #: The fine-tuning task that produced it, if any (no FK: tasks refer to models too).
    task_id: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_embedding_model_created_at_id", "created_at", "id"),)
