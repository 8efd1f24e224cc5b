"""Benchmark: the task event stream (issue 14).

1. Latency from a state change made by a worker to its event at a client of the stream.
   An API server (uvicorn, one process) serves ``GET /fine-tuning/task/{id}/stream``; this
   process plays the worker on the same database, through the worker's own service calls
   (``claim_task``: pending → processing, then ``fail_or_retry``: → failed). Each sample is
   the time from the commit of the move to the arrival of its event at an httpx client of
   the stream. Baseline in the same run: a Redis round trip (PING). Target: p99 < 250 ms.
2. Open streams and the API's throughput: ``POST /fine-tuning/task`` throughput with no
   stream open, and with 200 task streams held open on the same API process, in
   alternating rounds. Target: with/without >= 0.8.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/stream.py
    .venv/bin/python benchmarks/stream.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import tempfile
import threading
import time
from contextlib import ExitStack
from typing import Any

import httpx
import redis
from sqlalchemy.engine import make_url

from _common import MEASURED_SERVER_ENV, Latency, uvicorn_server
from api import BUNDLED_MODEL_ID, Throughput, drive, temporary_database, upload_batch


class NullDispatcher:
    def dispatch(self, task_id: str, message_id: str) -> None:
        """Nothing consumes: a failed task is not sent again."""

    def abort(self, run_id: str) -> None:
        """Nothing runs."""


def _follow(url: str, arrivals: queue.Queue[tuple[str, float]]) -> None:
    """Reads one task stream, putting (kind, arrival time) of each stored event."""
    with httpx.Client(timeout=60) as client, client.stream("GET", url) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and '"kind":"' in line:
                kind = line.split('"kind":"', 1)[1].split('"', 1)[0]
                arrivals.put((kind, time.perf_counter()))


def _arrival_of(arrivals: queue.Queue[tuple[str, float]], kind: str) -> float:
    while True:
        seen, at = arrivals.get(timeout=30)
        if seen == kind:
            return at


def bench_latency(args: argparse.Namespace, base_url: str, batch: str) -> list[float]:
    from embedtune.core.db import new_session
    from embedtune.fine_tuning import repository, running

    samples: list[float] = []
    body = {"embedding_model_id": BUNDLED_MODEL_ID, "batch_id": batch}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for n in range(args.samples // 2):
            task_id = client.post("/fine-tuning/task", json=body).json()["id"]
            arrivals: queue.Queue[tuple[str, float]] = queue.Queue()
            reader = threading.Thread(
                target=_follow, args=(f"{base_url}/fine-tuning/task/{task_id}/stream", arrivals)
            )
            reader.start()
            _arrival_of(arrivals, "dispatched")  # connected: the replay has come
            with new_session(writer=True) as session:
                task = repository.get(session, task_id)
                assert task is not None
                session.commit()
                began = time.perf_counter()
                claimed = running.claim_task(session, task_id, task.message_id, f"bench:{n}", "r")
                session.commit()
            assert claimed is not None
            samples.append(_arrival_of(arrivals, "claimed") - began)
            with new_session(writer=True) as session:
                began = time.perf_counter()
                running.fail_or_retry(
                    session,
                    claimed,
                    "bench",
                    "benchmark move",
                    retryable=False,
                    max_attempts=1,
                    dispatcher=NullDispatcher(),
                )
                session.commit()
            samples.append(_arrival_of(arrivals, "failed") - began)
            reader.join(30)
    return samples


def redis_round_trips(url: str, count: int) -> list[float]:
    client = redis.Redis.from_url(url)
    client.ping()
    times = []
    for _ in range(count):
        began = time.perf_counter()
        client.ping()
        times.append(time.perf_counter() - began)
    client.close()
    return times


class OpenStreams:
    """``count`` task streams held open by one event loop in a thread of this process."""

    def __init__(self, base_url: str, task_ids: list[str]) -> None:
        self._base_url = base_url
        self._task_ids = task_ids
        self._opened = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()))
        self.opened = 0

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        limits = httpx.Limits(max_connections=len(self._task_ids) + 10)
        async with httpx.AsyncClient(base_url=self._base_url, limits=limits, timeout=120) as http:
            ready = [asyncio.Event() for _ in self._task_ids]
            tasks = [
                asyncio.create_task(self._hold(http, task_id, event))
                for task_id, event in zip(self._task_ids, ready, strict=True)
            ]
            for event in ready:
                await event.wait()
            self.opened = len(ready)
            self._opened.set()
            await self._stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _hold(self, http: httpx.AsyncClient, task_id: str, ready: asyncio.Event) -> None:
        async with http.stream("GET", f"/fine-tuning/task/{task_id}/stream") as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    ready.set()

    def __enter__(self) -> OpenStreams:
        self._thread.start()
        if not self._opened.wait(300):
            raise RuntimeError("the streams did not open")
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


def bench_open_streams(args: argparse.Namespace, base_url: str, batch: str) -> None:
    body: dict[str, Any] = {"embedding_model_id": BUNDLED_MODEL_ID, "batch_id": batch}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        followed = [
            client.post("/fine-tuning/task", json=body).json()["id"] for _ in range(args.streams)
        ]
    none, held = Throughput(), Throughput()
    for _ in range(args.rounds):
        none.add(drive(base_url, "/fine-tuning/task", body, args))
        with OpenStreams(base_url, followed) as streams:
            held.add(drive(base_url, "/fine-tuning/task", body, args))
    print(
        f"\n2. Create throughput with {streams.opened} task streams open on the same API"
        f" process ({len(none.latencies)} timed creates each, {args.rounds} alternating rounds,"
        f" {args.concurrency} concurrent)"
    )
    for name, run in (("no stream open", none), (f"{streams.opened} streams open", held)):
        print(f"  {name:24} {run.requests_per_s:8.1f} req/s   {Latency.of(run.latencies)}")
    ratio = held.requests_per_s / none.requests_per_s
    print(f"  ratio with/without       {ratio:8.2f}   (target >= 0.8)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL server; default: a SQLite file")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--samples", type=int, default=200, help="latency samples")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--requests", type=int, default=1000, help="timed creates per side")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
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
        os.environ.update(env)  # this process plays the worker, on the same database
        base_url = stack.enter_context(uvicorn_server("embedtune.app:create_app", env, "/health"))
        with httpx.Client(base_url=base_url) as client:
            batch = upload_batch(client)
        print(f"database   {make_url(database_url).render_as_string()}")
        print("server     uvicorn, one process, 127.0.0.1; Redis broker, no worker, reaper off")

        samples = bench_latency(args, base_url, batch)
        baseline = redis_round_trips(args.redis_url, 1000)
        stream, rtt = Latency.of(samples), Latency.of(baseline)
        print(f"\n1. State change in a worker → event at a stream client ({len(samples)} moves)")
        print(f"  stream event             {stream}   (target p99 < 250 ms)")
        print(f"  Redis round trip (PING)  {rtt}")
        print(f"  ratio p99 stream/Redis   {stream.p99 / rtt.p99:8.1f}")
        bench_open_streams(args, base_url, batch)


if __name__ == "__main__":
    main()
