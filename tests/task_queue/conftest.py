"""Fixtures of the queue tests: a real broker per test (embedded, Redis or RabbitMQ), real
``embedtune worker`` processes, and a TCP proxy to take a broker away and bring it back."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest
import redis

from embedtune.core.config import get_settings

from .helpers import BROKER_URLS, EMBEDTUNE, RABBITMQ_URL, REDIS_URL, TcpProxy, WorkerProcesses

#: Short enough that a killed worker's task is recovered within seconds.
HEARTBEAT_TIMEOUT_S = 3.0


@pytest.fixture(params=["redis"])
def broker(request: pytest.FixtureRequest) -> Iterator[str]:
    """The broker kind; parametrize with ``indirect=True`` for others. Cleaned after use."""
    kind: str = request.param
    yield kind
    if kind == "redis":
        redis.Redis.from_url(REDIS_URL).flushdb()


@pytest.fixture
def queue_name(broker: str) -> Iterator[str]:
    name = f"ft-test-{uuid.uuid4().hex[:8]}"
    yield name
    if broker == "rabbitmq":
        with pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL)) as connection:
            channel = connection.channel()
            for queue in (name, f"{name}.DQ", f"{name}.XQ"):
                channel.queue_delete(queue)


@pytest.fixture
def settings_env(
    settings_env: dict[str, str], broker: str, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The root fixture's environment on ``broker``, inherited by worker processes."""
    env = {
        **settings_env,
        "EMBEDTUNE_BROKER_URL": BROKER_URLS[broker],
        "EMBEDTUNE_QUEUE_NAME": queue_name,
        "EMBEDTUNE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
        "EMBEDTUNE_LOG_LEVEL": "INFO",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return env


@pytest.fixture
def start_workers(
    settings_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcesses]]:
    """Starts ``embedtune worker`` processes on this test's database and broker; each is
    stopped at the end of the test."""
    started: list[WorkerProcesses] = []

    def start(processes: int = 1, ready_timeout: float = 60.0, **env: str) -> WorkerProcesses:
        log = tmp_path / f"worker-{len(started)}.log"
        process = subprocess.Popen(
            [str(EMBEDTUNE), "worker", "--processes", str(processes)],
            env={**os.environ, **env},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        workers = WorkerProcesses(process, log)
        started.append(workers)
        workers.wait_ready(processes, ready_timeout)
        return workers

    yield start
    for workers in started:
        workers.stop()


@pytest.fixture
def redis_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(6379)
    yield proxy
    proxy.down()
