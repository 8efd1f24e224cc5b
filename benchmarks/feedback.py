"""Benchmark: search feedback at traffic rates (issue 13), on SQLite and PostgreSQL.

1. Bulk ingest. ``--sessions`` (100,000) sessions of 10 results each, as NDJSON, through
   the bulk upload's service (parse, validate, deduplicate, store, one transaction per
   1,000 lines) against a bare ``executemany`` insert of the same rows (sessions, results,
   clicks, documents) into the same tables, in the same run. Sessions per second and the
   ratio. Target: feedback/bare >= 0.5.
2. Single-session POST. ``POST /feedback/sessions`` (a new session each time, 10 results
   with their texts) against the bare-insert endpoint of ``benchmarks/api.py``, both under
   uvicorn and driven by the same client, in alternating rounds. Target: ratio >= 0.5.
3. Release. ``POST /feedback/release``'s service over 10,000 and over ``--sessions``
   sessions (each in a fresh database), and how the time grows. Target: linear or better
   (the time ratio no larger than the size ratio).

    .venv/bin/python benchmarks/feedback.py                 # SQLite, then PostgreSQL
    .venv/bin/python benchmarks/feedback.py --databases sqlite --sessions 20000

PostgreSQL runs in a temporary database on ``--postgres-url`` (dropped at the end).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import itertools
import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine

from _common import MEASURED_SERVER_ENV, uvicorn_server
from api import BARE_DATABASE_ENV, Throughput, bare_metadata, drive, temporary_database
from embedtune.core.config import get_settings
from embedtune.core.db import get_engine, get_session_factory, new_session, transaction, utcnow
from embedtune.feedback import ingest as feedback_ingest
from embedtune.feedback import service
from embedtune.feedback.pairs import normalize_query
from embedtune.feedback.tables import (
    FeedbackClick,
    FeedbackDocument,
    FeedbackResult,
    FeedbackSession,
)
from embedtune.migrations import upgrade_database

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = 10
CORPUS = 20_000
QUERIES = 5_000
SMALL_RELEASE = 10_000
CHUNK = 1_000
WORDS = ["search", "index", "query", "rank", "click", "relevant", "answer", "help", "billing"]


class SearchLog:
    """Deterministic sessions: 10 results from a corpus, a position-biased click in most."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.texts = [
            f"document {i}: " + " ".join(self.rng.choices(WORDS, k=30)) for i in range(CORPUS)
        ]
        self.counter = itertools.count()

    def session(self, seen: set[str] | None = None) -> dict[str, Any]:
        """One session; results already in ``seen`` carry no text (as in a bulk file)."""
        number = next(self.counter)
        shown = self.rng.sample(range(CORPUS), RESULTS)
        results = []
        for doc in shown:
            result: dict[str, Any] = {"id": f"doc-{doc}"}
            if seen is None or result["id"] not in seen:
                result["text"] = self.texts[doc]
                if seen is not None:
                    seen.add(result["id"])
            results.append(result)
        rank = min(int(self.rng.expovariate(0.5)), RESULTS - 1)
        clicks = [results[rank]["id"]] if self.rng.random() < 0.6 else []
        query = f"query {self.rng.randrange(QUERIES)} " + " ".join(self.rng.choices(WORDS, k=3))
        return {"session_id": f"s-{number}", "query": query, "results": results, "clicks": clicks}

    def ndjson(self, sessions: int) -> bytes:
        seen: set[str] = set()
        return b"".join(json.dumps(self.session(seen)).encode() + b"\n" for _ in range(sessions))


@contextmanager
def configured(database_url: str) -> Iterator[None]:
    """embedtune's settings pointed at ``database_url`` (migrated) and a scratch artifact
    folder, for the in-process service calls."""
    with tempfile.TemporaryDirectory(prefix="embedtune-bench-") as artifacts:
        os.environ["EMBEDTUNE_DATABASE_URL"] = database_url
        os.environ["EMBEDTUNE_ARTIFACTS_DIR"] = artifacts
        get_settings.cache_clear()
        upgrade_database(database_url)
        try:
            yield
        finally:
            get_engine(database_url).dispose()
            get_engine.cache_clear()
            get_session_factory.cache_clear()


def ingest(database_url: str, content: bytes) -> float:
    with configured(database_url), new_session(writer=True) as session:
        began = time.perf_counter()
        answer = feedback_ingest.ingest_ndjson(session, io.BytesIO(content).readlines())
        seconds = time.perf_counter() - began
    if answer.rejected:
        raise RuntimeError(f"rejected lines, first: {answer.rejected[0]}")
    return seconds


def bare_rows(content: bytes) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """The rows of ``content``, 1,000 sessions at a time, built before any timing."""
    now = utcnow()
    lines = content.splitlines()
    for start in range(0, len(lines), CHUNK):
        rows: dict[str, list[dict[str, Any]]] = {"s": [], "r": [], "c": [], "d": []}
        for pk, line in enumerate(lines[start : start + CHUNK], start=start + 1):
            body = json.loads(line)
            rows["s"].append(
                {
                    "pk": pk,
                    "session_id": body["session_id"],
                    "query": body["query"],
                    # The same keys as embedtune's (indexed: their order costs at scale).
                    "query_key": hashlib.sha256(
                        normalize_query(body["query"]).encode()
                    ).hexdigest(),
                    "created_at": now,
                    "received_at": now,
                    "fingerprint": hashlib.sha256(line).hexdigest(),
                    "num_results": RESULTS,
                    "num_clicks": len(body["clicks"]),
                    "irrelevant": False,
                }
            )
            for rank, result in enumerate(body["results"], start=1):
                rows["r"].append({"session_pk": pk, "rank": rank, "document_id": result["id"]})
                if "text" in result:
                    rows["d"].append(
                        {"id": result["id"], "text": result["text"], "updated_at": now}
                    )
            rows["c"] += [
                {"session_pk": pk, "document_id": doc, "rank": 1, "created_at": now}
                for doc in body["clicks"]
            ]
        yield rows


def bare_insert(database_url: str, chunks: list[dict[str, list[dict[str, Any]]]]) -> float:
    upgrade_database(database_url)
    engine = create_engine(database_url)
    tables = {
        "s": FeedbackSession.__table__,
        "d": FeedbackDocument.__table__,
        "r": FeedbackResult.__table__,
        "c": FeedbackClick.__table__,
    }
    began = time.perf_counter()
    for rows in chunks:
        with engine.begin() as connection:
            for key, table in tables.items():
                if rows[key]:
                    connection.execute(table.insert(), rows[key])  # type: ignore[attr-defined]
    seconds = time.perf_counter() - began
    engine.dispose()
    return seconds


def bench_ingest(server_url: str | None, content: bytes, args: argparse.Namespace) -> None:
    """Alternating rounds (a part of the log each), so a slow spell of a shared machine
    hits both sides; each side fills its own database."""
    lines = content.splitlines(keepends=True)
    chunks = list(bare_rows(content))
    per_round = -(-len(chunks) // args.rounds)
    feedback_s = bare_s = 0.0
    with temporary_database(server_url) as ours, temporary_database(server_url) as bare:
        for start in range(0, len(chunks), per_round):
            part = b"".join(lines[start * CHUNK : (start + per_round) * CHUNK])
            feedback_s += ingest(ours, part)
            bare_s += bare_insert(bare, chunks[start : start + per_round])
    print(f"1. Bulk ingest ({args.rounds} alternating rounds)")
    print(f"  bare executemany       {args.sessions / bare_s:10,.0f} sessions/s")
    print(f"  feedback bulk upload   {args.sessions / feedback_s:10,.0f} sessions/s")
    print(f"  ratio feedback/bare    {bare_s / feedback_s:10.2f}   (target >= 0.5)")


def release(database_url: str, content: bytes) -> tuple[float, int]:
    ingest(database_url, content)
    with configured(database_url), new_session(writer=True) as session:
        began = time.perf_counter()
        with transaction(session):
            batch, _ = service.release(session, "bench")
        return time.perf_counter() - began, batch.num_examples


def bench_database(name: str, server_url: str | None, args: argparse.Namespace) -> None:
    log = SearchLog()
    content = log.ndjson(args.sessions)
    small_size = min(SMALL_RELEASE, args.sessions)
    small = b"".join(content.splitlines(keepends=True)[:small_size])
    print(f"\n== {name}: {args.sessions:,} sessions of {RESULTS} results ({len(content):,} bytes)")

    bench_ingest(server_url, content, args)

    with temporary_database(server_url) as url:
        bench_post(url, log, args)

    with temporary_database(server_url) as url:
        small_s, small_examples = release(url, small)
    with temporary_database(server_url) as url:
        large_s, large_examples = release(url, content)
    size_ratio = args.sessions / small_size
    print("3. Release into a batch")
    print(f"  {small_size:>9,} sessions  {small_s:8.2f} s  ({small_examples:,} examples)")
    print(f"  {args.sessions:>9,} sessions  {large_s:8.2f} s  ({large_examples:,} examples)")
    print(
        f"  time ratio {large_s / small_s:.1f} for {size_ratio:.0f}x the sessions"
        f"   (target <= {size_ratio:.0f}, linear or better)"
    )


def bench_post(database_url: str, log: SearchLog, args: argparse.Namespace) -> None:
    upgrade_database(database_url)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        bare_metadata.create_all(connection)
    engine.dispose()
    env = {
        "EMBEDTUNE_DATABASE_URL": database_url,
        "EMBEDTUNE_BROKER_URL": "",
        **MEASURED_SERVER_ENV,
    }
    bare, feedback = Throughput(), Throughput()
    with (
        tempfile.TemporaryDirectory(prefix="embedtune-bench-") as artifacts,
        uvicorn_server("api:create_bare_app", {BARE_DATABASE_ENV: database_url}, "/health") as b,
        uvicorn_server(
            "embedtune.app:create_app", {**env, "EMBEDTUNE_ARTIFACTS_DIR": artifacts}, "/health"
        ) as f,
    ):
        for _ in range(args.rounds):
            bare.add(drive(b, "/rows", {"embedding_model_id": "m", "batch_id": None}, args))
            feedback.add(drive(f, "/feedback/sessions", log.session, args))
    timed = len(bare.latencies)
    print(f"2. Single-session POST ({timed} timed requests each, {args.concurrency} concurrent)")
    print(f"  bare insert endpoint   {bare.requests_per_s:10.1f} req/s")
    print(f"  POST /feedback/sessions{feedback.requests_per_s:10.1f} req/s")
    ratio = feedback.requests_per_s / bare.requests_per_s
    print(f"  ratio feedback/bare    {ratio:10.2f}   (target >= 0.5)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--requests", type=int, default=1200, help="timed POSTs per endpoint")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of each part")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # The in-process parts run as the API process does after its start-up (app.py): what
    # is imported is frozen, out of the collector's full passes.
    gc.collect()
    gc.freeze()
    for name in args.databases.split(","):
        bench_database(name, None if name == "sqlite" else args.postgres_url, args)


if __name__ == "__main__":
    main()
