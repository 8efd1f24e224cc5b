"""Benchmark: create-task throughput and list latency of the task API (issue 3).

1. Create throughput. ``POST /fine-tuning/task`` against a bare FastAPI endpoint that
   inserts one row into the same database (same engine settings), both served the same
   way (uvicorn, one process, no access log) and driven by the same client (httpx, N
   threads with keep-alive connections, after a warm-up), in alternating rounds of one run.
   embedtune runs with a Redis broker that no worker consumes, so its tasks are really
   enqueued but stay pending and nothing is trained; its reaper is switched off so that it
   does not re-send them. Target: embedtune/bare >= 0.5.
2. List latency. ``GET /fine-tuning/task?status=pending&limit=100`` (and
   ``status=pending&status=failed``) at 1,000 tasks, then again once the table holds
   ``--tasks`` (1,000,000) tasks, bulk-inserted with SQL (mixed statuses, created over a
   year). ``X-Total-Count`` is checked against a real count. Target: 1M/1k <= 2.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/api.py
    .venv/bin/python benchmarks/api.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

SQLite runs on a temporary file. With ``--database-url`` (PostgreSQL only) a temporary
database is created on that server and dropped at the end. The Redis database of
``--redis-url`` is flushed before and after. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import redis
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Column, Engine, MetaData, String, Table, create_engine, insert, text
from sqlalchemy.engine import make_url

from _common import MEASURED_SERVER_ENV, Latency, uvicorn_server
from embedtune.core.db import UTCDateTime, get_writer_engine, utcnow
from embedtune.core.ids import new_id
from embedtune.models.service import BUNDLED_MODEL_ID

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: How the bare app, started by uvicorn in its own process, learns its database.
BARE_DATABASE_ENV = "EMBEDTUNE_BENCH_BARE_DATABASE_URL"
LIST_SIZE_SMALL = 1_000
PAGE = 100
FILL_CHUNK = 50_000
#: Share of each status among the bulk-inserted tasks: a history mostly finished, with a
#: backlog large enough that a 100-task page of pending (or pending+failed) tasks is full
#: at 1,000 tasks too, so both sizes serve the same page.
STATUS_WEIGHTS = {"pending": 12, "processing": 3, "completed": 65, "failed": 10, "canceled": 10}
LIST_FILTERS = {
    "status=pending": ["pending"],
    "status=pending&status=failed": ["pending", "failed"],
}

bare_metadata = MetaData()
bare_rows = Table(
    "bench_bare_row",
    bare_metadata,
    Column("id", String(64), primary_key=True),
    Column("embedding_model_id", String(255), nullable=False),
    Column("batch_id", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
)


class BareRowIn(BaseModel):
    embedding_model_id: str
    batch_id: str | None = None


def create_bare_app() -> FastAPI:
    """The baseline: validate a body, insert one row, commit, answer it as JSON."""
    # embedtune's engine for writes: the same pool, SQLite pragmas (WAL), BEGIN IMMEDIATE
    # and writer turns as the task API's own inserts.
    engine = get_writer_engine(os.environ[BARE_DATABASE_ENV])
    app = FastAPI()

    @app.post("/rows", status_code=201)
    def create_row(body: BareRowIn) -> dict[str, Any]:
        row = {"id": new_id("row-"), **body.model_dump(), "created_at": utcnow()}
        with engine.begin() as connection:
            connection.execute(insert(bare_rows).values(**row))
        return row

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


@contextmanager
def temporary_database(server_url: str | None) -> Iterator[str]:
    """A SQLite file in a temporary folder, or a fresh database on the PostgreSQL server
    of ``server_url`` (dropped on exit). Raises ``SystemExit`` for other URLs."""
    if server_url is None:
        with tempfile.TemporaryDirectory(prefix="embedtune-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    url = make_url(server_url)
    if url.get_backend_name() != "postgresql":
        raise SystemExit("--database-url must be a postgresql+psycopg:// URL")
    name = f"embedtune_bench_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


# --- 1. Create throughput


@dataclass
class Throughput:
    """Timed requests of one endpoint, summed over the rounds."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, other: Throughput) -> None:
        self.seconds += other.seconds
        self.latencies += other.latencies

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies) / self.seconds


def drive(
    base_url: str,
    path: str,
    body: dict[str, Any] | Callable[[], dict[str, Any]],
    args: argparse.Namespace,
) -> Throughput:
    """One round: ``args.requests // args.rounds`` POSTs from ``args.concurrency`` threads,
    each on its own keep-alive connection, timed once every thread has made its share of
    the warm-up.

    ``body`` is the same for every POST, or made anew for each by calling it. Raises
    ``RuntimeError`` if any answer is not 201.
    """
    per_thread = max(1, args.requests // args.rounds // args.concurrency)
    warmup_per_thread = max(1, args.warmup // args.concurrency)
    start = threading.Barrier(args.concurrency + 1)
    latencies: list[float] = []
    failures: list[str] = []

    def post(client: httpx.Client) -> float:
        began = time.perf_counter()
        response = client.post(path, json=body() if callable(body) else body)
        elapsed = time.perf_counter() - began
        if response.status_code != 201:
            failures.append(f"{response.status_code} {response.text[:200]}")
        return elapsed

    def client_thread() -> None:
        with httpx.Client(base_url=base_url, timeout=120) as client:
            for _ in range(warmup_per_thread):
                post(client)
            start.wait()
            latencies.extend([post(client) for _ in range(per_thread)])

    threads = [threading.Thread(target=client_thread) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"{len(failures)} request(s) to {path} failed, first: {failures[0]}")
    return Throughput(seconds, latencies)


def upload_batch(client: httpx.Client) -> str:
    # 24 pairs: at least 16 stay for training after the held-out split (else batch_too_small).
    examples = [{"query": f"question {i}", "positive": f"answer {i}"} for i in range(24)]
    response = client.post("/batches", json={"name": "bench", "examples": examples})
    response.raise_for_status()
    return str(response.json()["id"])


def count_tasks(engine: Engine, statuses: Sequence[str] | None = None) -> int:
    query = "SELECT count(*) FROM fine_tuning_task"
    params: dict[str, Any] = {}
    if statuses is not None:
        names = [f"s{i}" for i in range(len(statuses))]
        query += " WHERE status IN (" + ", ".join(f":{name}" for name in names) + ")"
        params = dict(zip(names, statuses, strict=True))
    with engine.connect() as connection:
        return int(connection.execute(text(query), params).scalar_one())


def bench_create(
    args: argparse.Namespace, engine: Engine, database_url: str, embedtune_url: str, batch: str
) -> None:
    body = {"embedding_model_id": BUNDLED_MODEL_ID, "batch_id": batch}
    with engine.begin() as connection:
        bare_metadata.create_all(connection)
    bare, embedtune = Throughput(), Throughput()
    with uvicorn_server("api:create_bare_app", {BARE_DATABASE_ENV: database_url}, "/health") as url:
        # Alternating rounds, so that a slow spell of a shared machine hits both sides.
        for _ in range(args.rounds):
            bare.add(drive(url, "/rows", body, args))
            embedtune.add(drive(embedtune_url, "/fine-tuning/task", body, args))
    created = count_tasks(engine)
    pending = count_tasks(engine, ["pending"])

    print(
        f"\n1. Create throughput ({len(bare.latencies)} timed requests each, in {args.rounds}"
        f" alternating rounds, {args.concurrency} concurrent)"
    )
    for name, run in (("bare insert endpoint", bare), ("POST /fine-tuning/task", embedtune)):
        print(f"  {name:24} {run.requests_per_s:8.1f} req/s   {Latency.of(run.latencies)}")
    ratio = embedtune.requests_per_s / bare.requests_per_s
    print(f"  ratio embedtune/bare     {ratio:8.2f}   (target >= 0.5)")
    print(f"  tasks created {created}, still pending {pending} (nothing was trained)")


# --- 2. List latency


@dataclass(frozen=True)
class Timeline:
    """Task ``n`` was created at ``origin + n * step``: the newest just now."""

    origin: datetime
    step: timedelta

    @classmethod
    def ending_now(cls, tasks: int, span: timedelta = timedelta(days=365)) -> Timeline:
        step = span / tasks
        return cls(utcnow() - step * tasks, step)


TASK_COLUMNS = (
    "id",
    "embedding_model_id",
    "batch_id",
    "status",
    "metadata",
    "idempotency_key",
    "request_fingerprint",
    "deploy_as_blue",
    "wait_on_conflict",
    "best_model_id",
    "best_model_url",
    "progress",
    "training_state",
    "metrics",
    "error",
    "attempts",
    "message_id",
    "dispatched_at",
    "worker_id",
    "run_id",
    "abort_requested",
    "heartbeat_at",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
)
PROGRESS = {"pending": 0.0, "processing": 0.5, "completed": 1.0, "failed": 0.3, "canceled": 0.0}
FINISHED = {"completed", "failed", "canceled"}
METRICS = '{"before": {"cosine_ndcg@10": 0.61}, "after": {"cosine_ndcg@10": 0.72}}'
ERROR = '{"code": "plugin_error", "message": "training diverged"}'


def task_rows(
    start: int,
    stop: int,
    timeline: Timeline,
    model_id: str,
    batch_id: str,
    stamp: Callable[[datetime], Any],
) -> Iterator[tuple[Any, ...]]:
    """Rows ``start..stop-1`` of a realistic history, values in ``TASK_COLUMNS`` order;
    ``stamp`` turns a datetime into what the driver should store."""
    rng = random.Random(start)
    statuses = rng.choices(list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values()), k=stop - start)
    for n, status in zip(range(start, stop), statuses, strict=True):
        created = timeline.origin + timeline.step * n
        started = created + timedelta(seconds=5) if status != "pending" else None
        finished = created + timedelta(minutes=10) if status in FINISHED else None
        best_model = f"ft-model-{n:016d}" if status == "completed" else None
        yield (
            f"ft-bench{n:018d}",
            model_id,
            batch_id,
            status,
            "{}",
            f"bench-key-{n}" if n % 2 else None,
            f"{n:064x}",
            False,
            False,
            best_model,
            f"http://127.0.0.1:8000/models/{best_model}/download" if best_model else None,
            PROGRESS[status],
            '{"step": 50, "total_steps": 100}' if status == "processing" else None,
            METRICS if status == "completed" else None,
            ERROR if status == "failed" else None,
            0 if status == "pending" else 1,
            f"msg-bench{n:017d}",
            stamp(created),
            "bench-worker" if started else None,
            f"run-bench{n:017d}" if started else None,
            status == "canceled",
            stamp(started + timedelta(seconds=30)) if status == "processing" and started else None,
            stamp(created),
            stamp(finished or started or created),
            stamp(started) if started else None,
            stamp(finished) if finished else None,
        )


def fill_tasks(engine: Engine, rows: Iterator[tuple[Any, ...]]) -> None:
    """Bulk insert through the driver. On SQLite the count triggers fire for every row.

    On PostgreSQL the rows are COPYed with the triggers off and the counters recounted at
    the end: there every trigger UPDATE of a counter row adds a row version that the next
    one must walk past until the transaction ends, so one big insert costs quadratic time.
    """
    columns = ", ".join(TASK_COLUMNS)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            dbapi_connection: Any = connection.connection.dbapi_connection
            with (
                dbapi_connection.cursor() as cursor,
                cursor.copy(f"COPY fine_tuning_task ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            connection.exec_driver_sql(
                "UPDATE fine_tuning_task_status_count AS counter SET count = (SELECT count(*)"
                " FROM fine_tuning_task AS task WHERE task.status = counter.status)"
            )
            return
        placeholders = ", ".join("?" for _ in TASK_COLUMNS)
        statement = f"INSERT INTO fine_tuning_task ({columns}) VALUES ({placeholders})"
        while chunk := list(islice(rows, FILL_CHUNK)):
            connection.exec_driver_sql(statement, chunk)


def sqlite_stamp(value: datetime) -> str:
    """How SQLAlchemy stores a UTCDateTime on SQLite: naive UTC text with microseconds."""
    return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True)
class ListTiming:
    latency: Latency
    rows: int
    total: int


def time_lists(
    client: httpx.Client, engine: Engine, repeats: int, warmup: int
) -> dict[str, ListTiming]:
    """Times each of ``LIST_FILTERS`` sequentially, one request at a time.

    Raises ``RuntimeError`` if an answer fails or its ``X-Total-Count`` is not the real count.
    """
    timings = {}
    for name, statuses in LIST_FILTERS.items():
        params: dict[str, Sequence[str] | int] = {"status": statuses, "limit": PAGE}
        expected_total = count_tasks(engine, statuses)
        latencies: list[float] = []
        for i in range(warmup + repeats):
            began = time.perf_counter()
            response = client.get("/fine-tuning/task", params=params)
            elapsed = time.perf_counter() - began
            response.raise_for_status()
            if i >= warmup:
                latencies.append(elapsed)
        total = int(response.headers["X-Total-Count"])
        if total != expected_total:
            raise RuntimeError(f"{name}: X-Total-Count {total}, real count {expected_total}")
        timings[name] = ListTiming(Latency.of(latencies), len(response.json()), total)
    return timings


def bench_list(args: argparse.Namespace, engine: Engine, embedtune_url: str, batch: str) -> None:
    with engine.begin() as connection:
        # The tasks of part 1 go, so that the small table holds exactly the filled tasks.
        connection.exec_driver_sql("DELETE FROM fine_tuning_task_event")
        connection.exec_driver_sql("DELETE FROM fine_tuning_task")
    timeline = Timeline.ending_now(args.tasks)
    stamp = sqlite_stamp if engine.dialect.name == "sqlite" else (lambda value: value)

    def fill(start: int, stop: int) -> float:
        began = time.perf_counter()
        fill_tasks(engine, task_rows(start, stop, timeline, BUNDLED_MODEL_ID, batch, stamp))
        if engine.dialect.name == "postgresql":
            # What autovacuum would have done by the time a table has grown this much.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("ANALYZE fine_tuning_task")
        return time.perf_counter() - began

    small_size = min(LIST_SIZE_SMALL, args.tasks)
    with httpx.Client(base_url=embedtune_url, timeout=120) as client:
        fill(0, small_size)
        small = time_lists(client, engine, args.list_repeats, args.list_warmup)
        fill_s = fill(small_size, args.tasks)
        large = time_lists(client, engine, args.list_repeats, args.list_warmup)

    print(f"\n2. List latency, limit={PAGE}, {args.list_repeats} sequential requests each")
    print(f"  filled {args.tasks - small_size} more tasks in {fill_s:.1f} s")
    for name in LIST_FILTERS:
        for size, timing in ((small_size, small[name]), (args.tasks, large[name])):
            print(
                f"  {name:28} at {size:>9,} tasks: {timing.latency}"
                f"   ({timing.rows} rows, X-Total-Count {timing.total:,})"
            )
        ratio = large[name].latency.p50 / small[name].latency.p50
        print(f"  {name:28} ratio p50 {args.tasks:,}/{small_size:,}: {ratio:.2f}   (target <= 2)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server (postgresql+psycopg://…) to create a temporary database on; "
        "default: a temporary SQLite file",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument(
        "--requests", type=int, default=2000, help="timed creates per endpoint, in all"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of creates")
    parser.add_argument("--warmup", type=int, default=100, help="untimed creates per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks for the large list")
    parser.add_argument("--list-repeats", type=int, default=200)
    parser.add_argument("--list-warmup", type=int, default=20)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    with ExitStack() as stack:
        database_url = stack.enter_context(temporary_database(args.database_url))
        artifacts = stack.enter_context(tempfile.TemporaryDirectory(prefix="embedtune-bench-"))
        broker = redis.Redis.from_url(args.redis_url)
        broker.flushdb()
        stack.callback(broker.flushdb)
        env = {
            "EMBEDTUNE_DATABASE_URL": database_url,
            "EMBEDTUNE_ARTIFACTS_DIR": artifacts,
            "EMBEDTUNE_BROKER_URL": args.redis_url,
            **MEASURED_SERVER_ENV,
        }
        embedtune_url = stack.enter_context(
            uvicorn_server("embedtune.app:create_app", env, "/health")
        )
        engine = create_engine(database_url)
        stack.callback(engine.dispose)
        with httpx.Client(base_url=embedtune_url) as client:
            batch = upload_batch(client)

        print(f"database   {make_url(database_url).render_as_string()}")
        print("servers    uvicorn, one process each, 127.0.0.1, no access log")
        print(f"client     httpx, {args.concurrency} threads with keep-alive connections")
        print(f"model      {BUNDLED_MODEL_ID} (plugin sentence-transformers), batch of 16")
        print(
            f"broker     Redis {args.redis_url} with no worker: tasks are enqueued and stay"
            " pending; reaper off"
        )
        bench_create(args, engine, database_url, embedtune_url, batch)
        bench_list(args, engine, embedtune_url, batch)


if __name__ == "__main__":
    main()
