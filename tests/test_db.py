"""The writers of one process take turns at a SQLite file: every way a write transaction
ends must end its turn, or the next writer waits out the whole busy timeout."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from embedtune.core.db import get_writer_engine

INSERT = text("INSERT INTO note (body) VALUES ('x')")


@pytest.fixture
def writer(tmp_path: Path) -> Engine:
    engine = get_writer_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE note (body TEXT)")
    return engine


def another_thread_writes(engine: Engine) -> bool:
    """Whether a writer in another thread commits within 5 s (the busy timeout is 60 s)."""
    done = threading.Event()

    def write() -> None:
        with engine.begin() as connection:
            connection.execute(INSERT)
        done.set()

    threading.Thread(target=write, daemon=True).start()
    return done.wait(5)


def commit(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(INSERT)


def rollback(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(INSERT)
        connection.rollback()


def raise_inside(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as connection:
        connection.execute(INSERT)
        raise RuntimeError("boom")


def close_session_mid_transaction(engine: Engine) -> None:
    with Session(engine) as session:
        session.execute(INSERT)


def invalidate_mid_transaction(engine: Engine) -> None:
    with engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(INSERT)
        connection.invalidate()
        transaction.rollback()


def fail_to_begin(engine: Engine) -> None:
    # BEGIN IMMEDIATE fails on a connection already in a transaction behind SQLAlchemy's
    # back: the turn taken for it must end.
    with engine.connect() as connection:
        connection.connection.dbapi_connection.execute("BEGIN")  # type: ignore[union-attr]
        with pytest.raises(OperationalError, match="within a transaction"):
            connection.execute(INSERT)


@pytest.mark.parametrize(
    "end",
    [
        commit,
        rollback,
        raise_inside,
        close_session_mid_transaction,
        invalidate_mid_transaction,
        fail_to_begin,
    ],
)
def test_each_way_a_write_ends_lets_the_next_writer_in(
    writer: Engine, end: Callable[[Engine], None]
) -> None:
    end(writer)
    assert another_thread_writes(writer)
    with writer.connect() as connection:
        stored = connection.exec_driver_sql("SELECT count(*) FROM note").scalar_one()
    assert stored == (2 if end is commit else 1)
