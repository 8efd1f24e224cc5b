"""Benchmark: what a ``/metrics`` scrape costs, and what scrapers cost everyone else (issue 11).

1. Scrape latency at 1,000 task events, then again once the event table holds ``--events``
   (1,000,000) events, bulk-inserted with SQL (claims with a queue latency, creations,
   dispatches, completions). Target: p50 at 1M / p50 at 1k <= 2.
2. List latency (``GET /fine-tuning/task?limit=100``, one client, sequential) alone, then
   while ``--scrapers`` (40) clients without a key scrape ``/metrics`` in a loop from another
   process. Target: p50 with scrapers / p50 alone <= 2.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/metrics.py

One uvicorn process on 127.0.0.1 (no access log) over a temporary SQLite file, the embedded
broker (nothing is dispatched: tasks are inserted as completed) and the reaper off. Figures
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import create_engine, func, insert, select
from sqlalchemy.engine import Engine

from _common import MEASURED_SERVER_ENV, Latency, uvicorn_server
from embedtune.core.db import utcnow
from embedtune.fine_tuning.tables import Task, TaskEvent
from embedtune.models.service import BUNDLED_MODEL_ID

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL = 1_000
TASKS = 1_000
CHUNK = 50_000
EVENT_KINDS = ("created", "dispatched", "claimed", "completed")


def insert_tasks(engine: Engine, count: int) -> list[str]:
    now = utcnow()
    rows = [
        {
            "id": f"ft-bench-{i:06d}",
            "embedding_model_id": BUNDLED_MODEL_ID,
            "status": "completed",
            "metadata": {},
            "request_fingerprint": "0" * 64,
            "deploy_as_blue": False,
            "wait_on_conflict": False,
            "progress": 1.0,
            "attempts": 1,
            "message_id": f"msg-bench-{i:06d}",
            "abort_requested": False,
            "created_at": now - timedelta(seconds=count - i),
            "updated_at": now,
        }
        for i in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(insert(Task), rows)
    return [row["id"] for row in rows]


def fill_events(engine: Engine, task_ids: list[str], target: int) -> None:
    """Inserts events until the table holds ``target``."""
    with engine.connect() as connection:
        have = int(connection.scalar(select(func.count()).select_from(TaskEvent)) or 0)
    now = utcnow()
    while have < target:
        chunk = []
        for n in range(have, min(target, have + CHUNK)):
            kind = EVENT_KINDS[n % len(EVENT_KINDS)]
            detail: dict[str, Any] = (
                {"queue_latency_s": (n % 997) / 100} if kind == "claimed" else {}
            )
            chunk.append(
                {
                    "task_id": task_ids[n % len(task_ids)],
                    "kind": kind,
                    "detail": detail,
                    "created_at": now,
                }
            )
        with engine.begin() as connection:
            connection.execute(insert(TaskEvent), chunk)
        have += len(chunk)


def timed_gets(client: httpx.Client, path: str, repeats: int, warmup: int) -> Latency:
    for _ in range(warmup):
        client.get(path).raise_for_status()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.get(path).raise_for_status()
        seconds.append(time.perf_counter() - start)
    return Latency.of(seconds)


async def scrape_forever(url: str, clients: int) -> None:
    async def one() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            while True:
                await client.get("/metrics")

    await asyncio.gather(*(one() for _ in range(clients)))


@contextmanager
def scrapers(url: str, clients: int) -> Iterator[None]:
    """``clients`` keep-alive clients scraping in a loop, in a process of their own."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--scrape-forever", url, "--scrapers", str(clients)]
    )
    try:
        time.sleep(2.0)  # every client connected and scraping
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def ratio(large: Latency, small: Latency) -> str:
    return f"p50 {large.p50 / small.p50:5.2f}  p99 {large.p99 / small.p99:5.2f}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--scrapers", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--scrape-forever", metavar="URL", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.scrape_forever:
        asyncio.run(scrape_forever(args.scrape_forever, args.scrapers))
        return
    with tempfile.TemporaryDirectory(prefix="embedtune-bench-") as home:
        database_url = f"sqlite:///{home}/embedtune.db"
        env = {
            "EMBEDTUNE_DATABASE_URL": database_url,
            "EMBEDTUNE_ARTIFACTS_DIR": f"{home}/artifacts",
            "EMBEDTUNE_BROKER_URL": "",
            "EMBEDTUNE_AUTH": "disabled",
            **MEASURED_SERVER_ENV,
        }
        with uvicorn_server("embedtune.app:create_app", env, "/health") as url:
            engine = create_engine(database_url)
            task_ids = insert_tasks(engine, TASKS)
            print(f"database   {database_url} ({TASKS} tasks)")
            print("server     uvicorn, one process, 127.0.0.1, no access log")
            print(f"client     httpx, one keep-alive connection, {args.repeats} timed requests")
            with httpx.Client(base_url=url, timeout=60) as client:
                fill_events(engine, task_ids, SMALL)
                small = timed_gets(client, "/metrics", args.repeats, args.warmup)
                started = time.monotonic()
                fill_events(engine, task_ids, args.events)
                filled = time.monotonic() - started
                large = timed_gets(client, "/metrics", args.repeats, args.warmup)
                print(f"\n/metrics scrape ({args.events:,} events inserted in {filled:.0f} s)")
                print(f"  {SMALL:>9,} events  {small}")
                print(f"  {args.events:>9,} events  {large}")
                print(
                    f"  ratio {args.events:,}/{SMALL:,}: {ratio(large, small)}  (target p50 <= 2)"
                )

                page = "/fine-tuning/task?limit=100"
                alone = timed_gets(client, page, args.repeats, args.warmup)
                with scrapers(url, args.scrapers):
                    busy = timed_gets(client, page, args.repeats, args.warmup)
                print(f"\nGET {page}")
                print(f"  alone               {alone}")
                print(f"  with {args.scrapers} scrapers     {busy}")
                print(f"  ratio with/alone: {ratio(busy, alone)}  (target p50 <= 2)")
            engine.dispose()


if __name__ == "__main__":
    main()
