"""live progress: webhooks, their deliveries, live workers, queue-position index

Revision ID: 0006_live
Revises: 0005_feedback
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import embedtune.core.db

revision = "0006_live"
down_revision = "0005_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=True),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook")),
    )
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("webhook_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=1024), nullable=True),
        sa.Column("next_attempt_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", embedtune.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhook.id"],
            name=op.f("fk_webhook_delivery_webhook_id_webhook"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
        sa.UniqueConstraint("message_id", name=op.f("uq_webhook_delivery_message_id")),
    )
    op.create_index(
        op.f("ix_webhook_delivery_webhook_id"), "webhook_delivery", ["webhook_id"], unique=False
    )
    op.create_index(
        "ix_webhook_delivery_status_next",
        "webhook_delivery",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_table(
        "worker_process",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=255), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("current_task_ids", sa.JSON(), nullable=False),
        sa.Column("started_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_process")),
    )
    op.create_index(
        "ix_fine_tuning_task_status_dispatched_at_id",
        "fine_tuning_task",
        ["status", "dispatched_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_fine_tuning_task_status_dispatched_at_id", table_name="fine_tuning_task")
    op.drop_table("worker_process")
    op.drop_index("ix_webhook_delivery_status_next", table_name="webhook_delivery")
    op.drop_index(op.f("ix_webhook_delivery_webhook_id"), table_name="webhook_delivery")
    op.drop_table("webhook_delivery")
    op.drop_table("webhook")
