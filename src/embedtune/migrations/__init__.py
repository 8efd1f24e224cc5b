"""Alembic migrations, shipped inside the package so an installed server can migrate."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(database_url: str) -> None:
    """Applies every migration; safe to run from many processes at once."""
    command.upgrade(alembic_config(database_url), "heads")


def has_schema(database_url: str) -> bool:
    """Whether the database exists and a server has migrated it (never creates it)."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from embedtune.core.db import get_engine

    url = make_url(database_url)
    sqlite_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if sqlite_file and not Path(str(url.database)).is_file():
        return False
    try:
        return inspect(get_engine(database_url)).has_table("alembic_version")
    except Exception:  # an unreachable server or missing database: no schema to use
        return False
