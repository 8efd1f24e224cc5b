from __future__ import annotations

from alembic import context
from sqlalchemy import text

from embedtune.auth import tables as _auth  # noqa: F401
from embedtune.batches import tables as _batches  # noqa: F401
from embedtune.core import abort_backend as _abort_backend  # noqa: F401  (registers the tables)
from embedtune.core.db import Base, get_writer_engine
from embedtune.deployments import tables as _deployments  # noqa: F401
from embedtune.feedback import tables as _feedback  # noqa: F401
from embedtune.fine_tuning import tables as _fine_tuning  # noqa: F401
from embedtune.models import tables as _models  # noqa: F401
from embedtune.webhooks import tables as _webhooks  # noqa: F401
from embedtune.workers import tables as _workers  # noqa: F401

#: Serializes concurrent migrations on PostgreSQL (API and workers starting together).
MIGRATION_LOCK_ID = 7_204_331


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    with get_writer_engine(url).connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            # SQLite's DDL is transactional too once we issue BEGIN ourselves. Then a run is
            # one transaction that reads the version inside it, so processes starting
            # together take turns at the write lock instead of each planning from a version
            # that another one is already migrating past.
            transactional_ddl=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
