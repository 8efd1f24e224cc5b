"""Feedback tables, built for search-traffic rates: one row per session, result and click,
documents stored once by id. The release of a session is a column, indexed with its time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from embedtune.core.db import Base, UTCDateTime

#: SQLite makes only an INTEGER primary key the row id (and so autoincrementing).
BigIntegerKey = BigInteger().with_variant(Integer(), "sqlite")


class FeedbackDocument(Base):
    """A search result's text, once per id; a new text replaces it for later releases."""

    __tablename__ = "feedback_document"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FeedbackSession(Base):
    __tablename__ = "feedback_session"

    pk: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    #: The client's id of the session.
    session_id: Mapped[str] = mapped_column(String(255), unique=True)
    query: Mapped[str] = mapped_column(Text)
    #: SHA-256 of the normalized query: sessions of "the same query" share it.
    query_key: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON(none_as_null=True))
    #: SHA-256 of the body as first sent: a replay with another body is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    num_results: Mapped[int] = mapped_column(SmallInteger)
    num_clicks: Mapped[int] = mapped_column(SmallInteger)
    first_click_rank: Mapped[int | None] = mapped_column(SmallInteger)
    last_click_rank: Mapped[int | None] = mapped_column(SmallInteger)
    irrelevant: Mapped[bool] = mapped_column(Boolean)
    #: Set once, by the release that took the session; NULL while collected.
    release_id: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_feedback_session_release_id_received_at", "release_id", "received_at"),
    )


class FeedbackResult(Base):
    """One result shown by a session, at its rank (1 = first)."""

    __tablename__ = "feedback_result"

    session_pk: Mapped[int] = mapped_column(
        BigIntegerKey, ForeignKey("feedback_session.pk", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    document_id: Mapped[str] = mapped_column(String(255))


class FeedbackClick(Base):
    """A click on one of a session's results; recorded once however often it is sent."""

    __tablename__ = "feedback_click"

    session_pk: Mapped[int] = mapped_column(
        BigIntegerKey, ForeignKey("feedback_session.pk", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    rank: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FeedbackRelease(Base):
    """A release: claimed first (its id is the idempotency key), then given its batch."""

    __tablename__ = "feedback_release"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("training_batch.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
