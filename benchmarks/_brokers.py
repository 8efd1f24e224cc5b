"""Broker helpers of the queue benchmark: a private Redis server, the Redis round trip, the
load a worker puts on the machine and on Redis, and RabbitMQ queue cleanup."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pika
import psutil
import redis

from _common import Latency, free_port


@contextmanager
def redis_server(url: str) -> Iterator[str]:
    """``url`` if given (its database flushed); else a private ``redis-server`` on a free
    port, so that the commands it counts are this run's alone."""
    if url:
        redis.Redis.from_url(url).flushdb()
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no redis-server on PATH: pass --redis-url")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    private = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(private).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield private
    finally:
        process.terminate()
        process.wait(10)


def redis_round_trip(url: str, samples: int) -> Latency:
    """The floor under any Redis-brokered dispatch: push from one client, pop in another."""
    producer, consumer = redis.Redis.from_url(url), redis.Redis.from_url(url)
    seconds = []
    for _ in range(samples):
        thread = threading.Thread(target=consumer.brpop, args=(["rt"], 5))
        thread.start()
        time.sleep(0.005)
        start = time.perf_counter()
        producer.lpush("rt", "x")
        thread.join()
        seconds.append(time.perf_counter() - start)
    return Latency.of(seconds)


@dataclass(frozen=True)
class Load:
    cpu_percent: float
    redis_commands_per_s: float

    def __str__(self) -> str:
        return (
            f"worker CPU {self.cpu_percent:5.2f} % of a core,"
            f" Redis {self.redis_commands_per_s:6.1f} commands/s"
        )


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def worker_load(supervisor_pid: int, redis_url: str, seconds: float) -> Load:
    """CPU of the ``embedtune worker`` supervisor and its processes, and the Redis server's
    commands per second (all clients: on a private server, the worker's and the API's),
    over the next ``seconds``."""
    supervisor = psutil.Process(supervisor_pid)
    processes = [supervisor, *supervisor.children(recursive=True)]
    client = redis.Redis.from_url(redis_url)

    def commands() -> int:
        return int(client.info("stats")["total_commands_processed"])

    cpu_before, commands_before, start = _cpu_seconds(processes), commands(), time.monotonic()
    time.sleep(seconds)
    cpu_after, commands_after = _cpu_seconds(processes), commands()
    elapsed = time.monotonic() - start
    return Load(
        cpu_percent=(cpu_after - cpu_before) / elapsed * 100,
        # Less the INFO that took the first reading.
        redis_commands_per_s=(commands_after - commands_before - 1) / elapsed,
    )


def delete_rabbitmq_queue(url: str, name: str) -> None:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        for queue in (name, f"{name}.DQ", f"{name}.XQ"):
            channel.queue_delete(queue)
