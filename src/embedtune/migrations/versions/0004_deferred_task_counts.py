"""task counters updated at commit on PostgreSQL; joins the two heads

Revision ID: 0004
Revises: 0002, 0003

Every task insert and status move updates a per-status counter row. Done in the statement,
it locks that row until the transaction ends, so concurrent creates queue on the
``pending`` row for the rest of each other's transactions (their event inserts and commit
round trips). A deferred constraint trigger makes the same update at commit, holding the
row for the commit alone. SQLite has one writer at a time anyway and stays as it is.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = ("0002", "0003")
branch_labels = None
depends_on = None

_TRIGGER = """CREATE {kind} fine_tuning_task_count
AFTER INSERT OR DELETE OR UPDATE OF status ON fine_tuning_task {timing}
FOR EACH ROW EXECUTE FUNCTION fine_tuning_task_count()"""
_DROP_TRIGGER = "DROP TRIGGER fine_tuning_task_count ON fine_tuning_task"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_DROP_TRIGGER)
        op.execute(
            _TRIGGER.format(kind="CONSTRAINT TRIGGER", timing="DEFERRABLE INITIALLY DEFERRED")
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_DROP_TRIGGER)
        op.execute(_TRIGGER.format(kind="TRIGGER", timing=""))
