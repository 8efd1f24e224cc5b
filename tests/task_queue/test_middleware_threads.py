"""The time limit and the abort watcher live as long as their worker, not their process."""

from __future__ import annotations

import threading
import time

import dramatiq
import pytest
from dramatiq.middleware import TimeLimitExceeded

from conftest import wait_until
from embedtune.core.config import get_settings
from embedtune.core.queue import build_broker


@pytest.mark.parametrize("broker", ["embedded", "redis"], indirect=True)
def test_a_time_limit_stops_an_actor_and_the_threads_end_with_the_worker(
    settings_env: dict[str, str], queue_name: str
) -> None:
    before = set(threading.enumerate())

    def left() -> list[str]:
        return [thread.name for thread in set(threading.enumerate()) - before]

    broker = build_broker(get_settings())
    outcomes: list[str] = []

    def slow() -> None:
        try:
            for _ in range(200):  # 10 s, unless the limit stops it
                time.sleep(0.05)
            outcomes.append("ran to the end")
        except TimeLimitExceeded:
            outcomes.append("stopped by the limit")
            raise

    actor = dramatiq.actor(
        slow, broker=broker, queue_name=queue_name, time_limit=300, max_retries=0
    )
    for _ in range(3):  # a worker started and stopped again, as each app of a process does
        worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
        worker.start()
        assert {"embedtune-time-limit", "embedtune-abort-watch"} <= set(left())
        worker.stop()
        wait_until(lambda: not left(), timeout=5, message=lambda: f"threads left: {left()}")

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        actor.send()
        wait_until(lambda: outcomes, timeout=8, message="the actor never ended")
    finally:
        worker.stop()
    assert outcomes == ["stopped by the limit"]
    broker.close()
