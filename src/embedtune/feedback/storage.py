"""Storing new search sessions, many at a time: the write path of ``POST /feedback/sessions``
and of the bulk upload (every other query of the feature is in ``repository``).

PostgreSQL stores a chunk in one statement: one array per column, unnested, in binary;
SQLite, a local file, takes the driver's ``executemany`` of each table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Column, Connection, Table
from sqlalchemy.orm import Session

from embedtune.core.db import TEXTS_CHECKED, UTCDateTime
from embedtune.feedback.tables import (
    FeedbackClick,
    FeedbackDocument,
    FeedbackResult,
    FeedbackSession,
)

#: Every text of a new session was checked where it was parsed: pydantic refuses unpaired
#: surrogates in its strings, ``SessionIn.metadata`` is a ``StoredObject``, and
#: ``ingest._check_rules`` refuses NUL anywhere in the body.
_CHECKED = {TEXTS_CHECKED: True}

_session = cast(Table, FeedbackSession.__table__)
_result = cast(Table, FeedbackResult.__table__)
_click = cast(Table, FeedbackClick.__table__)
_document = cast(Table, FeedbackDocument.__table__)


@dataclass
class NewSessions:
    """Sessions to store and what they showed, keyed by ``session_id``, in line order."""

    now: datetime
    #: feedback_session rows (every column but ``pk``).
    sessions: list[dict[str, Any]] = field(default_factory=list)
    #: ``(session_id, document_ids)``: the ids shown, in rank order (rank 1 first).
    results: list[tuple[str, list[str]]] = field(default_factory=list)
    #: ``(session_id, document_id, text)``: the texts given.
    texts: list[tuple[str, str, str]] = field(default_factory=list)
    #: ``(session_id, document_id, rank, created_at)``.
    clicks: list[tuple[str, str, int, datetime]] = field(default_factory=list)


def store_sessions(session: Session, new: NewSessions) -> dict[str, int]:
    """Inserts the sessions whose id is new, with their results and clicks, and stores the
    texts they give (the last given for an id wins; a text replaces an older one). Returns
    ``{session_id: pk}`` of the sessions inserted: a session whose id is taken (by a
    concurrent writer) writes nothing."""
    if not new.sessions:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        return _pg_store_sessions(session, new)
    connection = session.connection()
    pks = _sqlite_insert_sessions(connection, new.sessions)
    texts = {doc: text for sid, doc, text in new.texts if sid in pks}
    # Ids in sorted order, so concurrent writers lock shared documents in the same order.
    documents = [(doc, texts[doc], new.now) for doc in sorted(texts)]
    results: list[tuple[int, int, str]] = []
    for sid, ids in new.results:
        if (pk := pks.get(sid)) is not None:
            results += zip(repeat(pk, len(ids)), range(1, len(ids) + 1), ids, strict=True)
    clicks = [(pks[sid], doc, rank, at) for sid, doc, rank, at in new.clicks if sid in pks]
    for columns, rows, tail in (
        (_DOCUMENT_COLUMNS, documents, _UPSERT_TAIL),
        (_RESULT_COLUMNS, results, ""),
        (_CLICK_COLUMNS, clicks, ""),
    ):
        if rows:
            table = columns[0].table.name
            names = ", ".join(column.name for column in columns)
            marks = ", ".join("?" for _ in columns)
            if any(_processor(connection.dialect, column) for column in columns):
                rows = list(zip(*_bound(connection.dialect, columns, rows), strict=True))
            sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) {tail}"
            connection.exec_driver_sql(sql, rows, execution_options=_CHECKED)
    return pks


_SESSION_COLUMNS = tuple(column for column in _session.c if column.key != "pk")
#: A session row's values in ``_SESSION_COLUMNS``' order.
_session_values = itemgetter(*(column.key for column in _SESSION_COLUMNS))
_DOCUMENT_COLUMNS = (_document.c.id, _document.c.text, _document.c.updated_at)
_RESULT_COLUMNS = (_result.c.session_pk, _result.c.rank, _result.c.document_id)
_CLICK_COLUMNS = (_click.c.session_pk, _click.c.document_id, _click.c.rank, _click.c.created_at)
_UPSERT_TAIL = (
    "ON CONFLICT (id) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at "
    "WHERE feedback_document.text <> excluded.text"
)


def _processor(dialect: Any, column: Column[Any]) -> Callable[[Any], Any] | None:
    """How ``column``'s type binds a value for the driver; None: as it is."""
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _bound(
    dialect: Any, columns: Sequence[Column[Any]], rows: Sequence[Sequence[Any]]
) -> list[list[Any]]:
    """``rows`` (tuples in ``columns``' order) as one list per column, each value as its
    column's type binds it, for the driver."""
    by_column: list[list[Any]] = []
    for index, column in enumerate(columns):
        process = _processor(dialect, column)
        values = [row[index] for row in rows]
        if process is None:
            by_column.append(values)
        elif isinstance(column.type, UTCDateTime):
            # A chunk's times are mostly one (its arrival): each distinct one bound once.
            bound: dict[Any, Any] = {}
            by_column.append(
                [bound[v] if v in bound else bound.setdefault(v, process(v)) for v in values]
            )
        else:
            by_column.append([process(v) for v in values])
    return by_column


#: Sessions a SQLite statement inserts: 14 parameters each, under SQLite's 32,766.
_SQLITE_PAGE = 500


def _sqlite_insert_sessions(connection: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` (SQLite's driver returns no
    rows from executemany), its parameters bound as ``_bound`` does."""
    columns = _SESSION_COLUMNS
    values = list(map(_session_values, rows))
    bound = list(zip(*_bound(connection.dialect, columns, values), strict=True))
    names = ", ".join(column.name for column in columns)
    marks = "(" + ", ".join("?" for _ in columns) + ")"
    pks: dict[str, int] = {}
    for start in range(0, len(bound), _SQLITE_PAGE):
        page = bound[start : start + _SQLITE_PAGE]
        sql = (
            f"INSERT INTO feedback_session ({names}) VALUES {', '.join([marks] * len(page))} "
            "ON CONFLICT (session_id) DO NOTHING RETURNING session_id, pk"
        )
        parameters = tuple(chain.from_iterable(page))
        result = connection.exec_driver_sql(sql, parameters, execution_options=_CHECKED)
        pks.update({session_id: pk for session_id, pk in result})
    return pks


def _arrays(dialect: Any, columns: Sequence[Column[Any]]) -> str:
    # %b: arrays go in binary, which psycopg writes without escaping each text.
    return ", ".join(f"%b::{column.type.compile(dialect)}[]" for column in columns)


def _pg_store_sessions(session: Session, new: NewSessions) -> dict[str, int]:
    """One statement, whatever the number of sessions (one round trip, one plan): each
    column an array, unnested; the details join the sessions inserted by ``session_id``
    (the first column of their arrays)."""
    connection = session.connection()
    dialect = connection.dialect
    sid = _session.c.session_id
    names = ", ".join(column.name for column in _SESSION_COLUMNS)
    sql = f"""
WITH s AS (
    INSERT INTO feedback_session ({names})
    SELECT * FROM unnest({_arrays(dialect, _SESSION_COLUMNS)})
    ON CONFLICT (session_id) DO NOTHING
    RETURNING session_id, pk
), d AS (
    INSERT INTO feedback_document (id, text, updated_at)
    SELECT DISTINCT ON (x.id) x.id, x.text, x.updated_at
    FROM unnest({_arrays(dialect, (sid, *_DOCUMENT_COLUMNS))})
        WITH ORDINALITY AS x (session_id, id, text, updated_at, n)
    WHERE x.session_id IN (SELECT session_id FROM s)
    ORDER BY x.id, x.n DESC
    {_UPSERT_TAIL}
), r AS (
    INSERT INTO feedback_result (session_pk, rank, document_id)
    SELECT s.pk, x.rank, x.document_id
    FROM unnest({_arrays(dialect, (sid, *_RESULT_COLUMNS[1:]))})
        AS x (session_id, rank, document_id)
    JOIN s USING (session_id)
), c AS (
    INSERT INTO feedback_click (session_pk, document_id, rank, created_at)
    SELECT s.pk, x.document_id, x.rank, x.created_at
    FROM unnest({_arrays(dialect, (sid, *_CLICK_COLUMNS[1:]))})
        AS x (session_id, document_id, rank, created_at)
    JOIN s USING (session_id)
)
SELECT session_id, pk FROM s"""
    sessions = list(map(_session_values, new.sessions))
    texts = [(*text, new.now) for text in new.texts]
    parameters = (
        *_bound(dialect, _SESSION_COLUMNS, sessions),
        *_bound(dialect, (sid, *_DOCUMENT_COLUMNS), texts),
        # The results' columns need no binding: session_id, rank, document_id.
        list(chain.from_iterable(repeat(s, len(ids)) for s, ids in new.results)),
        list(chain.from_iterable(range(1, len(ids) + 1) for _, ids in new.results)),
        list(chain.from_iterable(ids for _, ids in new.results)),
        *_bound(dialect, (sid, *_CLICK_COLUMNS[1:]), new.clicks),
    )
    rows = connection.exec_driver_sql(sql, parameters, execution_options=_CHECKED)
    return {session_id: pk for session_id, pk in rows}
