"""Engine, sessions and the column types every feature shares."""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar

from fastapi import Depends, Request
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from embedtune.core.config import get_settings
from embedtune.core.errors import Unprocessable
from embedtune.core.wire import text_problem

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return (
            value.astimezone(UTC)
            if dialect.name != "sqlite"
            else value.astimezone(UTC).replace(tzinfo=None)
        )

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


SQLITE_BUSY_TIMEOUT_MS = 60_000
_WRITER_OPTION = "embedtune_writer"
_UNIT_DEPTH = "embedtune_unit_depth"
#: An execution option for statements whose every text was checked where it was parsed
#: (``core.wire``'s rules): the per-parameter check below skips them.
TEXTS_CHECKED = "embedtune_texts_checked"
P = ParamSpec("P")
R = TypeVar("R")
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _enable_wal(cursor: Any) -> None:
    # Switching a new file to WAL needs it to itself and does not wait for a busy lock, so
    # processes starting together (API and workers) retry for a while.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _configure_sqlite(engine: Engine) -> None:
    # A deferred transaction that reads and then writes cannot wait for the write lock
    # (SQLITE_BUSY at once if another writer got in between), so writers take the lock at
    # BEGIN and queue on busy_timeout. Readers stay deferred: in WAL mode they never block,
    # and never hold the lock that writers wait for.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    turns = _WriterTurns()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if not connection.get_execution_options().get(_WRITER_OPTION, False):
            connection.exec_driver_sql("BEGIN")
            return
        turns.wait(connection.info)
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            turns.end(connection.info)
            raise

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(connection: Any) -> None:
        # An invalidated connection has no info to read (the invalidate event ended its turn).
        if not connection.invalidated:
            turns.end(connection.info)

    # Backstops for a connection dropped in a transaction: its turn must not outlive it.
    @event.listens_for(engine, "checkin")
    @event.listens_for(engine, "close")
    @event.listens_for(engine, "invalidate")
    def _on_release(_: Any, record: ConnectionPoolEntry, *args: Any) -> None:
        turns.end(record.info)


class _WriterTurns:
    """The writers of one process take turns at one SQLite file here before BEGIN IMMEDIATE.

    SQLite's busy handler polls with sleeps that grow to 100 ms, so a writer that finds the
    lock taken often sleeps on long after it is free (creates at 8 concurrent requests had a
    p99 near 200 ms). A lock in the process hands the turn over at once. Writers of other
    processes still queue on busy_timeout; a turn not had within that time is skipped, and
    SQLite's lock decides, as it would without this.
    """

    _HOLDS = "embedtune_writer_turn"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def wait(self, info: dict[str, Any]) -> None:
        if self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            info[self._HOLDS] = True

    def end(self, info: dict[str, Any]) -> None:
        """Ends the turn of the connection with ``info``, if it holds one (any thread may)."""
        if info.pop(self._HOLDS, False):
            self._lock.release()


def _check_text_parameters(
    _connection: Any, _cursor: Any, _statement: str, parameters: Any, context: Any, *_: Any
) -> None:
    """No client text reaches SQL that a database cannot hold: PostgreSQL rejects NUL
    characters and no driver encodes an unpaired surrogate (both raised deep in the
    driver, as a 500). Every text parameter of every statement passes here, and every text
    in an array parameter (a column of rows unnested on PostgreSQL), unless the statement
    says its texts were checked already (:data:`TEXTS_CHECKED`: bulk writes of parsed rows,
    where this walk would be a fifth of the work)."""
    if context is not None and context.execution_options.get(TEXTS_CHECKED):
        return
    rows = parameters if isinstance(parameters, list) else (parameters,)
    for row in rows:
        values = row.values() if isinstance(row, dict) else row or ()
        for value in values:
            for text in value if isinstance(value, list) else (value,):
                if isinstance(text, str) and (problem := text_problem(text)) is not None:
                    raise Unprocessable(f"text values {problem}", code="validation_error")


@lru_cache(maxsize=8)
def get_engine(database_url: str) -> Engine:
    """One engine per URL for the whole process (readers; see ``new_session``)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        engine = create_engine(url, connect_args=connect_args, pool_size=20, max_overflow=40)
        _configure_sqlite(engine)
    else:
        # More connections than the API's threadpool (40): a request never waits for one.
        engine = create_engine(url, pool_size=10, max_overflow=50, pool_pre_ping=True)
    event.listen(engine, "before_cursor_execute", _check_text_parameters)
    return engine


@lru_cache(maxsize=16)
def get_session_factory(database_url: str, writer: bool = False) -> sessionmaker[Session]:
    engine = get_engine(database_url)
    bind = engine.execution_options(**{_WRITER_OPTION: True}) if writer else engine
    return sessionmaker(bind, expire_on_commit=False)


def new_session(*, writer: bool = False) -> Session:
    """A session on the configured database; the caller owns its unit of work.

    ``writer=True`` for a unit of work that writes (on SQLite its transactions take the
    write lock when they begin); readers must not write.
    """
    return get_session_factory(get_settings().database_url, writer)()


_AFTER_COMMIT = "embedtune_after_commit"


def after_commit(session: Session, job: Callable[[Session], None]) -> None:
    """Work for the queue, a stream or a webhook that the current unit of work asks for:
    run once it commits, in order, and dropped if it rolls back (as Polar's
    ``JobQueueManager`` flushes its jobs). What a job writes (a failed send's record) is
    committed as a unit of its own."""
    session.info.setdefault(_AFTER_COMMIT, []).append(job)


def commit(session: Session) -> None:
    """Commits the unit of work, then runs the work collected for after its commit."""
    if session.in_transaction():
        session.commit()
    while jobs := session.info.pop(_AFTER_COMMIT, None):
        for job in jobs:
            job(session)
            if session.in_transaction():
                session.commit()


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session: Session, _: object) -> None:
    session.info.pop(_AFTER_COMMIT, None)


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """One unit of work, owned by the caller (a route, an actor's run, a loop's pass): it
    commits when the block ends, then sends what was collected for after the commit
    (:func:`after_commit`); it rolls back when the block raises. Nested blocks end nothing;
    the outermost one does.

    So no connection, and no SQLite write lock, is held past the call: FastAPI serializes a
    sync endpoint's response on a threadpool thread, and under load every thread can be
    waiting for that lock.
    """
    depth = session.info.get(_UNIT_DEPTH, 0)
    session.info[_UNIT_DEPTH] = depth + 1
    try:
        yield session
    except BaseException:
        session.info[_UNIT_DEPTH] = depth
        if depth == 0:
            session.rollback()
        raise
    session.info[_UNIT_DEPTH] = depth
    if depth == 0:
        commit(session)


@contextmanager
def separate_unit(session: Session) -> Iterator[Session]:
    """A unit of work that must commit as soon as its block ends, before a long step that
    holds no transaction: a lock or a claim that other processes must see meanwhile, or
    reads that must not keep SQLite's write lock while a model loads. A function made of
    such units owns them, and its caller holds no unit of work around it: this raises
    RuntimeError inside another :func:`transaction`, where it would commit nothing."""
    if session.info.get(_UNIT_DEPTH, 0):
        raise RuntimeError("a separate unit of work cannot run inside another unit of work")
    with transaction(session):
        yield session


def unit_of_work(
    function: Callable[Concatenate[Session, P], R],
) -> Callable[Concatenate[Session, P], R]:
    """Runs ``function`` as a :func:`transaction` of its own when no caller holds one
    (reads that end their transaction; the callers' units of work)."""

    @functools.wraps(function)
    def wrapper(session: Session, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with transaction(session):
            return function(session, *args, **kwargs)

    return wrapper


async def get_session(request: Request) -> AsyncIterator[Session]:
    session = new_session(writer=request.method not in _READ_METHODS)
    try:
        yield session
    finally:
        session.close()


# Closed on the event loop (an async dependency needs no threadpool thread to end).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_writer_engine(database_url: str) -> Engine:
    """The engine for connections that write (migrations)."""
    return get_engine(database_url).execution_options(**{_WRITER_OPTION: True})
