"""Every query of search feedback but the storing of new sessions (``storage``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, String, Table, any_, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from embedtune.feedback.tables import (
    FeedbackClick,
    FeedbackDocument,
    FeedbackRelease,
    FeedbackResult,
    FeedbackSession,
)

#: Ids per ``IN (…)`` list: well under SQLite's 32,766 bound parameters.
IN_CHUNK = 2_000

_session = cast(Table, FeedbackSession.__table__)
_result = cast(Table, FeedbackResult.__table__)
_click = cast(Table, FeedbackClick.__table__)
_document = cast(Table, FeedbackDocument.__table__)
_release = cast(Table, FeedbackRelease.__table__)


def _insert(session: Session, table: Table) -> Any:
    """An INSERT that can say ``ON CONFLICT`` (the dialect's own) on both databases."""
    return (postgresql if _on_postgresql(session) else sqlite).insert(table)


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


def _among(session: Session, column: Any, values: Sequence[str]) -> Any:
    """``column IN values``; on PostgreSQL ``= ANY`` of one array parameter, which the
    driver neither splits into a placeholder per value nor the server plans anew per size."""
    if _on_postgresql(session):
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(String)))
    return column.in_(values)


# --- collecting ---------------------------------------------------------------------------


def fingerprints(session: Session, session_ids: Sequence[str]) -> dict[str, str]:
    """The stored body fingerprint of each of ``session_ids`` already stored."""
    found: dict[str, str] = {}
    for chunk in _chunks(session_ids):
        query = select(_session.c.session_id, _session.c.fingerprint).where(
            _among(session, _session.c.session_id, chunk)
        )
        found.update({row.session_id: row.fingerprint for row in session.execute(query).all()})
    return found


def known_documents(session: Session, document_ids: Sequence[str]) -> set[str]:
    known: set[str] = set()
    for chunk in _chunks(document_ids):
        query = select(_document.c.id).where(_among(session, _document.c.id, chunk))
        known.update(session.scalars(query).all())
    return known


def lock_session(session: Session, session_id: str) -> Row[Any, Any] | None:
    """``(pk, release_id)`` of a session, its row locked until the transaction ends (a
    release waits for it, or it waits for the release)."""
    query = (
        select(_session.c.pk, _session.c.release_id)
        .where(_session.c.session_id == session_id)
        .with_for_update()
    )
    return session.execute(query).first()


def result_rank(session: Session, session_pk: int, document_id: str) -> int | None:
    query = select(_result.c.rank).where(
        _result.c.session_pk == session_pk, _result.c.document_id == document_id
    )
    rank: int | None = session.scalar(query)
    return rank


def add_click(
    session: Session, session_pk: int, document_id: str, rank: int, now: datetime
) -> bool:
    """Records a click once; False if it was recorded before. Keeps the session's counts."""
    statement = (
        _insert(session, _click)
        .values(session_pk=session_pk, document_id=document_id, rank=rank, created_at=now)
        .on_conflict_do_nothing(index_elements=["session_pk", "document_id"])
        .returning(_click.c.rank)
    )
    if session.execute(statement).first() is None:
        return False
    first, last = _session.c.first_click_rank, _session.c.last_click_rank
    session.execute(
        update(_session)
        .where(_session.c.pk == session_pk)
        .values(
            num_clicks=_session.c.num_clicks + 1,
            first_click_rank=case((first.is_(None) | (first > rank), rank), else_=first),
            last_click_rank=case((last.is_(None) | (last < rank), rank), else_=last),
        )
    )
    return True


def mark_irrelevant(session: Session, session_pk: int) -> None:
    session.execute(update(_session).where(_session.c.pk == session_pk).values(irrelevant=True))


# --- reading ------------------------------------------------------------------------------


def get_session(session: Session, session_id: str) -> FeedbackSession | None:
    query = select(FeedbackSession).where(FeedbackSession.session_id == session_id)
    return session.scalars(query).first()


def list_newest_first(session: Session, offset: int, limit: int) -> list[FeedbackSession]:
    query = select(FeedbackSession).order_by(FeedbackSession.pk.desc()).offset(offset).limit(limit)
    return list(session.scalars(query))


def count_sessions(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(_session)) or 0)


def results_of(session: Session, session_pks: Sequence[int]) -> dict[int, list[str]]:
    """Each session's result ids, by rank."""
    shown: dict[int, list[str]] = defaultdict(list)
    query = (
        select(_result.c.session_pk, _result.c.document_id)
        .where(_result.c.session_pk.in_(session_pks))
        .order_by(_result.c.session_pk, _result.c.rank)
    )
    for row in session.execute(query):
        shown[row.session_pk].append(row.document_id)
    return shown


def clicks_of(session: Session, session_pks: Sequence[int]) -> dict[int, list[str]]:
    """Each session's clicked result ids, in the order they were recorded."""
    clicked: dict[int, list[str]] = defaultdict(list)
    query = (
        select(_click.c.session_pk, _click.c.document_id)
        .where(_click.c.session_pk.in_(session_pks))
        .order_by(_click.c.session_pk, _click.c.created_at, _click.c.rank)
    )
    for row in session.execute(query):
        clicked[row.session_pk].append(row.document_id)
    return clicked


def unreleased_summary(session: Session) -> Row[Any]:
    """Counts over the sessions not yet released (one pass over the unreleased index)."""
    unreleased = _session.c.release_id.is_(None)
    clicked = case((_session.c.num_clicks > 0, 1))
    query = select(
        func.count().label("sessions"),
        func.count(clicked).label("sessions_with_clicks"),
        func.count(case((_session.c.irrelevant, 1))).label("irrelevant_sessions"),
        func.coalesce(func.sum(_session.c.num_clicks), 0).label("clicks"),
        func.count(func.distinct(_session.c.query_key)).label("distinct_queries"),
        func.avg(_session.c.first_click_rank).label("mean_first_click_rank"),
    ).where(unreleased)
    row = session.execute(query).one()
    return row


def unreleased_documents(session: Session) -> int:
    query = (
        select(func.count(func.distinct(_result.c.document_id)))
        .select_from(_result.join(_session, _session.c.pk == _result.c.session_pk))
        .where(_session.c.release_id.is_(None))
    )
    return int(session.scalar(query) or 0)


# --- releasing ----------------------------------------------------------------------------


def claim_release(session: Session, release_id: str, now: datetime) -> bool:
    """Inserts the release row; False if that release exists. A concurrent claim of the same
    id waits here until the first one commits (then False) or rolls back (then True)."""
    statement = (
        _insert(session, _release)
        .values(id=release_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(_release.c.id)
    )
    return session.execute(statement).first() is not None


def release_batch_id(session: Session, release_id: str) -> str | None:
    batch_id: str | None = session.scalar(
        select(_release.c.batch_id).where(_release.c.id == release_id)
    )
    return batch_id


def set_release_batch(session: Session, release_id: str, batch_id: str) -> None:
    session.execute(update(_release).where(_release.c.id == release_id).values(batch_id=batch_id))


def take_unreleased(session: Session, release_id: str) -> int:
    """Gives every session not yet released to ``release_id``; returns how many.

    One statement: on PostgreSQL a session committed after it started is not seen (it
    belongs to the next release), and a session another release took first is skipped
    once that release commits, so none is lost or taken twice.
    """
    statement = (
        update(_session).where(_session.c.release_id.is_(None)).values(release_id=release_id)
    )
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def released_sessions(session: Session, release_id: str) -> Sequence[Row[Any, Any, Any]]:
    """The release's sessions that give pairs: clicked, not marked irrelevant."""
    query = (
        select(_session.c.pk, _session.c.query, _session.c.query_key)
        .where(
            _session.c.release_id == release_id,
            _session.c.num_clicks > 0,
            _session.c.irrelevant.is_(False),
        )
        .order_by(_session.c.pk)
    )
    return session.execute(query).all()


def released_click_count(session: Session, release_id: str) -> int:
    query = select(func.coalesce(func.sum(_session.c.num_clicks), 0)).where(
        _session.c.release_id == release_id
    )
    return int(session.scalar(query) or 0)


def released_shown_above_last_click(
    session: Session, release_id: str
) -> Sequence[Row[Any, Any, Any]]:
    """``(session_pk, rank, document_id)`` of the results a pair-giving session of the
    release showed at or above its last click: its clicks and its skip-above candidates."""
    query = (
        select(_result.c.session_pk, _result.c.rank, _result.c.document_id)
        .join(_session, _session.c.pk == _result.c.session_pk)
        .where(
            _session.c.release_id == release_id,
            _session.c.num_clicks > 0,
            _session.c.irrelevant.is_(False),
            _result.c.rank <= _session.c.last_click_rank,
        )
    )
    return session.execute(query).all()


def released_clicks(session: Session, release_id: str) -> Sequence[Row[Any, Any]]:
    """``(session_pk, document_id)`` of every click in the release's sessions."""
    query = (
        select(_click.c.session_pk, _click.c.document_id)
        .join(_session, _session.c.pk == _click.c.session_pk)
        .where(_session.c.release_id == release_id)
    )
    return session.execute(query).all()


def clicked_for_release_queries(
    session: Session, release_id: str, query_keys: Iterable[str]
) -> Iterator[Row[Any, Any]]:
    """``(query_key, document_id)`` clicked in any session, released or not, of
    ``query_keys``, the release's queries that give pairs: those documents are never
    negatives for that query.

    PostgreSQL takes the keys from the release in one statement (a hash semi-join). SQLite
    looks each key up in the query-key index, and with the keys in a subquery's (hash)
    order those lookups went all over it: a release of 100,000 sessions spent 24 times as
    long here as one of 10,000. Sorted, a chunk at a time, each chunk reads one stretch of
    the index, and at 100,000 sessions this took half the time (at 10,000, the same).
    """
    pairs = select(_session.c.query_key, _click.c.document_id).join(
        _session, _session.c.pk == _click.c.session_pk
    )
    if _on_postgresql(session):
        keys = select(_session.c.query_key).where(_session.c.release_id == release_id)
        yield from session.execute(pairs.where(_session.c.query_key.in_(keys)).distinct())
        return
    for chunk in _chunks(sorted(query_keys)):
        yield from session.execute(pairs.where(_session.c.query_key.in_(chunk)).distinct())


def document_texts(session: Session, document_ids: Sequence[str]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for chunk in _chunks(document_ids):
        query = select(_document.c.id, _document.c.text).where(
            _among(session, _document.c.id, chunk)
        )
        texts.update({row.id: row.text for row in session.execute(query).all()})
    return texts
