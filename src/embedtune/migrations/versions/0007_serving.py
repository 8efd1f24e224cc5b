"""model_export: the ONNX/OpenVINO export of each model and its quality check

Revision ID: 0007_serving
Revises: 0006_live
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from embedtune.core.db import UTCDateTime

revision = "0007_serving"
down_revision = "0006_live"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_export",
        sa.Column(
            "model_id",
            sa.String(255),
            sa.ForeignKey("embedding_model.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("directory", sa.Text()),
        sa.Column("quality", sa.JSON()),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("heartbeat_at", UTCDateTime(timezone=True)),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_export")
