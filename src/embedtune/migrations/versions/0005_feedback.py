"""search feedback: sessions, results, clicks, documents, releases; batch provenance

Revision ID: 0005_feedback
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import embedtune.core.db

revision = "0005_feedback"
down_revision = "0004"
branch_labels = None
depends_on = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _session_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["session_pk"],
        ["feedback_session.pk"],
        name=op.f(f"fk_{table}_session_pk_feedback_session"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    with op.batch_alter_table("training_batch") as batch:
        batch.add_column(
            sa.Column("source", sa.String(length=16), server_default="upload", nullable=False)
        )
        batch.add_column(sa.Column("release_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("num_sessions", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("num_clicks", sa.Integer(), nullable=True))
    op.create_table(
        "feedback_document",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_document")),
    )
    op.create_table(
        "feedback_session",
        sa.Column("pk", _KEY, autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("query_key", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("num_results", sa.SmallInteger(), nullable=False),
        sa.Column("num_clicks", sa.SmallInteger(), nullable=False),
        sa.Column("first_click_rank", sa.SmallInteger(), nullable=True),
        sa.Column("last_click_rank", sa.SmallInteger(), nullable=True),
        sa.Column("irrelevant", sa.Boolean(), nullable=False),
        sa.Column("release_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_feedback_session")),
        sa.UniqueConstraint("session_id", name=op.f("uq_feedback_session_session_id")),
    )
    op.create_index(
        op.f("ix_feedback_session_query_key"), "feedback_session", ["query_key"], unique=False
    )
    op.create_index(
        "ix_feedback_session_release_id_received_at",
        "feedback_session",
        ["release_id", "received_at"],
        unique=False,
    )
    op.create_table(
        "feedback_result",
        sa.Column("session_pk", _KEY, nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("document_id", sa.String(length=255), nullable=False),
        _session_fk("feedback_result"),
        sa.PrimaryKeyConstraint("session_pk", "rank", name=op.f("pk_feedback_result")),
    )
    op.create_table(
        "feedback_click",
        sa.Column("session_pk", _KEY, nullable=False),
        sa.Column("document_id", sa.String(length=255), nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        _session_fk("feedback_click"),
        sa.PrimaryKeyConstraint("session_pk", "document_id", name=op.f("pk_feedback_click")),
    )
    op.create_table(
        "feedback_release",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["training_batch.id"],
            name=op.f("fk_feedback_release_batch_id_training_batch"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_release")),
    )


def downgrade() -> None:
    op.drop_table("feedback_release")
    op.drop_table("feedback_click")
    op.drop_table("feedback_result")
    op.drop_index("ix_feedback_session_release_id_received_at", table_name="feedback_session")
    op.drop_index(op.f("ix_feedback_session_query_key"), table_name="feedback_session")
    op.drop_table("feedback_session")
    op.drop_table("feedback_document")
    with op.batch_alter_table("training_batch") as batch:
        batch.drop_column("num_clicks")
        batch.drop_column("num_sessions")
        batch.drop_column("release_id")
        batch.drop_column("source")
