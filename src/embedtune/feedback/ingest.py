"""Storing search feedback: one session (``POST /feedback/sessions``) or an NDJSON upload
of many, each stored once; a replay finds the stored session.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from embedtune.core.db import separate_unit, utcnow
from embedtune.core.errors import Unprocessable
from embedtune.feedback import repository, storage
from embedtune.feedback.pairs import normalize_query
from embedtune.feedback.schemas import (
    BulkOut,
    RejectedLine,
    ResultOut,
    SessionIn,
    SessionOut,
)
from embedtune.feedback.service import get_session

MAX_METADATA_BYTES = 16 * 1024
#: Lines of a bulk upload stored per transaction.
BULK_CHUNK = 1_000
_ACCEPTED, _DUPLICATE = "accepted", "duplicate"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


@dataclass(slots=True)
class _Checked:
    """A line that keeps the rules: its fingerprint, and its results' ids taken once."""

    line: int
    body: SessionIn
    #: SHA-256 of the body's canonical JSON.
    fingerprint: str
    #: The ids shown, in rank order.
    ids: list[str]
    #: The ids shown without a text.
    textless: list[str]


def _check_rules(line: int, body: SessionIn) -> _Checked:
    """The rules a session must keep besides its shape. Raises Unprocessable."""
    ids = [result.id for result in body.results]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise Unprocessable(f"result {duplicate!r} is shown twice", code="duplicate_result")
    if body.clicks and (unknown := sorted(set(body.clicks).difference(ids))):
        raise Unprocessable(
            f"clicks name result(s) not shown: {', '.join(map(repr, unknown))}",
            code="unknown_result",
        )
    metadata = "" if body.metadata is None else _compact(body.metadata)
    if len(metadata.encode()) > MAX_METADATA_BYTES:
        raise Unprocessable("metadata exceeds 16 KiB as compact JSON", code="metadata_too_large")
    # Fields in model order, metadata keys sorted. JSON writes a NUL as \u0000.
    canonical = body.model_dump_json(exclude={"metadata"}) + metadata
    if "\\u0000" in canonical and _holds_nul(body):
        raise Unprocessable("text must not contain NUL characters", code="validation_error")
    textless = [result.id for result in body.results if result.text is None]
    return _Checked(line, body, hashlib.sha256(canonical.encode()).hexdigest(), ids, textless)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _holds_nul(body: SessionIn) -> bool:
    """Whether a text of ``body`` holds NUL (which PostgreSQL cannot store)."""
    return any("\x00" in text for text in _strings(body.model_dump()))


def _created_at(body: SessionIn, now: datetime) -> datetime:
    if body.created_at is None:
        return now
    # A time without a zone is taken as UTC.
    return body.created_at if body.created_at.tzinfo else body.created_at.replace(tzinfo=UTC)


def _reused(session_id: str) -> Unprocessable:
    return Unprocessable(
        f"session {session_id!r} was already stored with a different body",
        code="session_id_reused",
    )


def _session_row(
    body: SessionIn, fingerprint: str, now: datetime, created_at: datetime, clicked: list[int]
) -> dict[str, Any]:
    """``clicked``: the ranks of the session's clicks."""
    return {
        "session_id": body.session_id,
        "query": body.query,
        "query_key": hashlib.sha256(normalize_query(body.query).encode()).hexdigest(),
        "user_id": body.user_id,
        "created_at": created_at,
        "received_at": now,
        "metadata": body.metadata,
        "fingerprint": fingerprint,
        "num_results": len(body.results),
        "num_clicks": len(clicked),
        "first_click_rank": min(clicked, default=None),
        "last_click_rank": max(clicked, default=None),
        "irrelevant": False,
        "release_id": None,
    }


@dataclass
class _Chunk:
    """The lines of one transaction and what became of each."""

    items: list[tuple[int, SessionIn]]
    outcome: dict[int, str | Unprocessable] = field(default_factory=dict)
    #: The arrival time of the chunk's sessions.
    now: datetime = field(default_factory=utcnow)


def _store_chunk(session: Session, chunk: _Chunk, seen: set[str]) -> None:
    """Stores the chunk's new sessions; ``seen`` holds the document ids known so far."""
    checked: list[_Checked] = []
    for line, body in chunk.items:
        try:
            checked.append(_check_rules(line, body))
        except Unprocessable as exc:
            chunk.outcome[line] = exc
    textless = set().union(*(c.textless for c in checked)).difference(seen)
    seen |= repository.known_documents(session, sorted(textless)) if textless else set()
    # A lone session is written first and looked up only if its id is taken (one statement
    # fewer a POST). A chunk looks its ids up first: a line stored before must not make
    # its texts count as seen for the lines after it.
    lone = len(checked) == 1
    session_ids = [c.body.session_id for c in checked]
    stored = {} if lone else repository.fingerprints(session, session_ids)
    new: dict[str, _Checked] = {}
    for c in checked:
        sid = c.body.session_id
        missing = [] if seen.issuperset(c.textless) else [i for i in c.textless if i not in seen]
        if lone and missing:
            stored = repository.fingerprints(session, session_ids)
        earlier = stored.get(sid)
        if earlier is None and sid in new:
            earlier = new[sid].fingerprint
        if earlier is not None:
            chunk.outcome[c.line] = _DUPLICATE if earlier == c.fingerprint else _reused(sid)
            continue
        if missing:
            chunk.outcome[c.line] = Unprocessable(
                f"result(s) {', '.join(map(repr, missing))} need a text the first time",
                code="document_text_required",
            )
            continue
        new[sid] = c
        if len(c.textless) < len(c.ids):
            seen.update(r.id for r in c.body.results if r.text is not None)
    pks = storage.store_sessions(session, _new_rows(new.values(), chunk.now))
    raced = [sid for sid in new if sid not in pks]
    for sid, fingerprint in repository.fingerprints(session, raced).items():
        mine = new.pop(sid)
        chunk.outcome[mine.line] = _DUPLICATE if fingerprint == mine.fingerprint else _reused(sid)
    chunk.outcome.update({c.line: _ACCEPTED for c in new.values()})


def _new_rows(new: Iterable[_Checked], now: datetime) -> storage.NewSessions:
    """The rows of the sessions to store, their results, texts and clicks, in line order."""
    rows = storage.NewSessions(now=now)
    for c in new:
        body = c.body
        sid = body.session_id
        created_at = _created_at(body, now)
        rows.results.append((sid, c.ids))
        if len(c.textless) < len(c.ids):
            rows.texts += [(sid, r.id, r.text) for r in body.results if r.text is not None]
        clicked: list[int] = []
        if body.clicks:
            distinct = list(dict.fromkeys(body.clicks))
            clicked = [c.ids.index(doc) + 1 for doc in distinct]
            rows.clicks += [
                (sid, doc, rank, created_at) for doc, rank in zip(distinct, clicked, strict=True)
            ]
        rows.sessions.append(_session_row(body, c.fingerprint, now, created_at, clicked))
    return rows


def create_session(session: Session, body: SessionIn) -> tuple[SessionOut, bool]:
    """Stores one session in the caller's unit of work; ``(session, created)``. The same
    body again returns the stored one. Raises Unprocessable (``session_id_reused``,
    ``unknown_result``, ``duplicate_result``, ``document_text_required``,
    ``metadata_too_large``)."""
    chunk = _Chunk([(1, body)])
    _store_chunk(session, chunk, set())
    outcome = chunk.outcome[1]
    if isinstance(outcome, Unprocessable):
        raise outcome
    if outcome == _DUPLICATE:
        return get_session(session, body.session_id), False
    # Answered as stored, without reading it back.
    return SessionOut(
        session_id=body.session_id,
        query=body.query,
        results=[ResultOut(id=r.id, rank=rank) for rank, r in enumerate(body.results, start=1)],
        clicks=list(dict.fromkeys(body.clicks)),
        irrelevant=False,
        user_id=body.user_id,
        created_at=_created_at(body, chunk.now),
        received_at=chunk.now,
        metadata=body.metadata,
        release_id=None,
    ), True


def _lines(file: Iterable[bytes]) -> Iterator[tuple[int, SessionIn | str]]:
    for number, raw in enumerate(file, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, f"not UTF-8 ({exc.reason})"
            continue
        if not text.strip():
            continue
        try:
            yield number, SessionIn.model_validate_json(text)
        except ValidationError as exc:
            yield (
                number,
                "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors()
                ),
            )


def ingest_ndjson(session: Session, file: Iterable[bytes]) -> BulkOut:
    """Stores the good lines of an NDJSON upload and lists the bad ones. A replay stores
    nothing twice: its lines are duplicates.

    Each chunk is a unit of work of its own (the caller holds none): a large upload never
    holds one transaction, nor SQLite's write lock, for its whole length."""
    answer = BulkOut(accepted=0, duplicates=0, rejected=[])
    seen: set[str] = set()
    lines = _lines(file)
    while block := list(islice(lines, BULK_CHUNK)):
        chunk = _Chunk([(n, body) for n, body in block if isinstance(body, SessionIn)])
        chunk.outcome.update(
            {n: Unprocessable(str(body)) for n, body in block if isinstance(body, str)}
        )
        with separate_unit(session):
            _store_chunk(session, chunk, seen)
        for line, outcome in sorted(chunk.outcome.items()):
            if isinstance(outcome, Unprocessable):
                answer.rejected.append(RejectedLine(line=line, detail=outcome.detail))
            elif outcome == _ACCEPTED:
                answer.accepted += 1
            else:
                answer.duplicates += 1
    return answer
