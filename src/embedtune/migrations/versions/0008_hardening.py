"""event counters for /metrics, filled from the events recorded so far

Revision ID: 0008_hardening
Revises: 0007_serving

A scrape used to count and parse every task event. The counters are now rows moved by the
transaction that records each event; this fills them once from the existing events.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_hardening"
down_revision = "0007_serving"
branch_labels = None
depends_on = None

#: As in ``embedtune.fine_tuning.counters`` when this migration was written.
_BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_KINDS = {"claimed": "task_claims", "heartbeat_lost": "task_recoveries", "canceled": "task_cancels"}


def upgrade() -> None:
    counter = op.create_table(
        "fine_tuning_event_counter",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_fine_tuning_event_counter")),
    )
    event = sa.table(
        "fine_tuning_task_event", sa.column("kind", sa.String), sa.column("detail", sa.JSON)
    )
    bind = op.get_bind()
    counted = bind.execute(
        sa.select(event.c.kind, sa.func.count())
        .where(event.c.kind.in_(list(_KINDS)))
        .group_by(event.c.kind)
    )
    counts: dict[str, int] = {kind: int(n) for kind, n in counted}
    latency = event.c.detail["queue_latency_s"].as_float()
    row = bind.execute(
        sa.select(
            sa.func.count(latency),
            sa.func.coalesce(sa.func.sum(latency), 0.0),
            *(
                sa.func.coalesce(sa.func.sum(sa.case((latency <= b, 1), else_=0)), 0)
                for b in _BOUNDS
            ),
        ).where(event.c.kind == "claimed")
    ).one()
    values = {name: float(counts.get(kind, 0)) for kind, name in _KINDS.items()}
    values["dispatch_latency_count"] = float(row[0])
    values["dispatch_latency_sum"] = float(row[1])
    for bound, n in zip(_BOUNDS, row[2:], strict=True):
        values[f"dispatch_latency_le_{bound}"] = float(n)
    op.bulk_insert(counter, [{"name": name, "value": value} for name, value in values.items()])


def downgrade() -> None:
    op.drop_table("fine_tuning_event_counter")
