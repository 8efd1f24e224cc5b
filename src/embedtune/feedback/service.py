"""The rules of search feedback: clicks once, reads, and releases exactly once (sessions
are stored by :mod:`embedtune.feedback.ingest`).

Writes run in the caller's unit of work (the route's; ``release`` also in task creation,
which commits it with the task). Reads marked ``unit_of_work`` end their own read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from sqlalchemy.orm import Session

from embedtune.batches import service as batches
from embedtune.batches.tables import Batch
from embedtune.core.db import unit_of_work, utcnow
from embedtune.core.errors import InvalidState, NotFound, Unprocessable
from embedtune.core.ids import new_id
from embedtune.feedback import repository
from embedtune.feedback.pairs import ShownSession, build_pairs
from embedtune.feedback.schemas import (
    FeedbackSummary,
    ResultOut,
    SessionOut,
)
from embedtune.feedback.tables import FeedbackSession


def _locked(session: Session, session_id: str) -> int:
    row = repository.lock_session(session, session_id)
    if row is None:
        raise session_not_found(session_id)
    if row.release_id is not None:
        raise InvalidState(
            f"session {session_id!r} was released in {row.release_id!r}; it cannot change",
            code="session_released",
        )
    return int(row.pk)


def add_click(session: Session, session_id: str, result_id: str) -> SessionOut:
    """Records a later click (once). Raises NotFound (``session_not_found``), Unprocessable
    (``unknown_result``), InvalidState (``session_released``)."""
    pk = _locked(session, session_id)
    rank = repository.result_rank(session, pk, result_id)
    if rank is None:
        raise Unprocessable(
            f"session {session_id!r} did not show {result_id!r}", code="unknown_result"
        )
    repository.add_click(session, pk, result_id, rank, utcnow())
    return get_session(session, session_id)


def mark_irrelevant(session: Session, session_id: str) -> SessionOut:
    """The user said nothing shown was relevant: the session gives no pairs. Raises
    NotFound (``session_not_found``), InvalidState (``session_released``)."""
    repository.mark_irrelevant(session, _locked(session, session_id))
    return get_session(session, session_id)


def session_not_found(session_id: str) -> NotFound:
    return NotFound(f"session {session_id!r} not found", code="session_not_found")


def _out(sessions: list[FeedbackSession], session: Session) -> list[SessionOut]:
    pks = [row.pk for row in sessions]
    shown, clicked = repository.results_of(session, pks), repository.clicks_of(session, pks)
    return [
        SessionOut(
            session_id=row.session_id,
            query=row.query,
            results=[ResultOut(id=doc, rank=i) for i, doc in enumerate(shown[row.pk], start=1)],
            clicks=clicked[row.pk],
            irrelevant=row.irrelevant,
            user_id=row.user_id,
            created_at=row.created_at,
            received_at=row.received_at,
            metadata=row.metadata_,
            release_id=row.release_id,
        )
        for row in sessions
    ]


@unit_of_work
def get_session(session: Session, session_id: str) -> SessionOut:
    """Raises NotFound (``session_not_found``)."""
    row = repository.get_session(session, session_id)
    if row is None:
        raise session_not_found(session_id)
    return _out([row], session)[0]


@unit_of_work
def list_sessions(session: Session, offset: int, limit: int) -> tuple[list[SessionOut], int]:
    rows = repository.list_newest_first(session, offset, limit)
    return _out(rows, session), repository.count_sessions(session)


@unit_of_work
def summary(session: Session) -> FeedbackSummary:
    row = repository.unreleased_summary(session)
    mean_rank = row.mean_first_click_rank
    return FeedbackSummary(
        sessions=row.sessions,
        sessions_with_clicks=row.sessions_with_clicks,
        irrelevant_sessions=row.irrelevant_sessions,
        clicks=int(row.clicks),
        distinct_queries=row.distinct_queries,
        distinct_documents=repository.unreleased_documents(session),
        click_through_rate=row.sessions_with_clicks / row.sessions if row.sessions else 0.0,
        mean_first_click_rank=None if mean_rank is None else float(mean_rank),
    )


def _examples(session: Session, release_id: str) -> Iterator[dict[str, str]]:
    sessions = repository.released_sessions(session, release_id)
    shown: dict[int, dict[int, str]] = defaultdict(dict)
    for row in repository.released_shown_above_last_click(session, release_id):
        shown[row.session_pk][row.rank] = row.document_id
    clicked: dict[int, set[str]] = defaultdict(set)
    for click in repository.released_clicks(session, release_id):
        clicked[click.session_pk].add(click.document_id)
    clicked_for_query: dict[str, set[str]] = defaultdict(set)
    keys = {s.query_key for s in sessions}
    for known in repository.clicked_for_release_queries(session, release_id, keys):
        clicked_for_query[known.query_key].add(known.document_id)
    pairs = build_pairs(
        (
            ShownSession(s.query_key, s.query, shown[s.pk], frozenset(clicked[s.pk]))
            for s in sessions
        ),
        clicked_for_query,
    )
    negatives = [pair.hard_negative() for pair in pairs]
    wanted = {pair.document_id for pair in pairs} | {n for n in negatives if n is not None}
    texts = repository.document_texts(session, sorted(wanted))
    for pair, negative_id in zip(pairs, negatives, strict=True):
        positive = texts.get(pair.document_id)
        if positive is None:
            continue
        example = {"query": pair.query, "positive": positive}
        negative = texts.get(negative_id or "")
        if negative is not None and negative != positive:
            example["negative"] = negative
        yield example


def release(session: Session, release_id: str | None) -> tuple[Batch, bool]:
    """Turns every session collected since the last release into a training batch;
    ``(batch, created)``. The same ``release_id`` again answers the same batch. Raises Unprocessable
    (``no_feedback``) when nothing was collected, or nothing collected gives a pair; then
    nothing is released.
    """
    release_id = release_id or new_id("release-")
    if not repository.claim_release(session, release_id, utcnow()):
        batch_id = repository.release_batch_id(session, release_id)
        assert batch_id is not None  # a release row is committed with its batch
        return batches.get_batch(session, batch_id), False
    num_sessions = repository.take_unreleased(session, release_id)
    if num_sessions == 0:
        raise Unprocessable("no feedback was collected since the last release", code="no_feedback")
    try:
        batch = batches.store_generated(
            session,
            f"feedback {release_id}"[:255],
            _examples(session, release_id),
            source="feedback",
            release_id=release_id,
            num_sessions=num_sessions,
            num_clicks=repository.released_click_count(session, release_id),
        )
    except batches.EmptyBatch as exc:
        raise Unprocessable(
            f"the {num_sessions} session(s) collected since the last release give no pair "
            "(none has a click on a result)",
            code="no_feedback",
        ) from exc
    repository.set_release_batch(session, release_id, batch.id)
    return batch, True
