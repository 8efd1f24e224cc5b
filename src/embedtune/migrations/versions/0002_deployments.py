"""deployments: the blue slot, its history, waiting deployments, and task.deployment

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:38:46.922873

``fine_tuning_task.deployment`` is added and dropped with plain ALTER TABLE, not a batch
(table-copying) operation, so SQLite keeps the task's status-counter triggers.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import embedtune.core.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.String(length=255), nullable=False),
        sa.Column("since", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("until", embedtune.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["embedding_model.id"],
            name=op.f("fk_deployment_model_id_embedding_model"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment")),
    )
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.create_index("ix_deployment_until", ["until"], unique=False)

    op.create_table(
        "deployment_slot",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("since", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lock_token", sa.String(length=64), nullable=True),
        sa.Column("lock_expires_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["embedding_model.id"],
            name=op.f("fk_deployment_slot_model_id_embedding_model"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_deployment_slot")),
    )
    op.create_table(
        "deployment_wait",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.String(length=255), nullable=False),
        sa.Column("wait_until", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claim_token", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", embedtune.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", embedtune.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["embedding_model.id"],
            name=op.f("fk_deployment_wait_model_id_embedding_model"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["fine_tuning_task.id"],
            name=op.f("fk_deployment_wait_task_id_fine_tuning_task"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_deployment_wait")),
    )
    op.add_column("fine_tuning_task", sa.Column("deployment", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("fine_tuning_task", "deployment")

    op.drop_table("deployment_wait")
    op.drop_table("deployment_slot")
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.drop_index("ix_deployment_until")

    op.drop_table("deployment")
