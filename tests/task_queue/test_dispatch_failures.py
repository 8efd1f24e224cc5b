"""A broker outage adds one dispatch_failed event per task, counting the failed re-sends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from embedtune.core.config import get_settings

from .helpers import REDIS_URL, TcpProxy


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_failed_resends_during_an_outage_are_counted_in_one_event(
    redis_proxy: TcpProxy,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    settings_env: dict[str, str],
) -> None:
    monkeypatch.setenv("EMBEDTUNE_BROKER_URL", REDIS_URL.replace("6379", str(redis_proxy.port)))
    get_settings.cache_clear()
    client: TestClient = request.getfixturevalue("app_client")
    create_task: Callable[..., dict[str, Any]] = request.getfixturevalue("create_task")

    task = create_task()
    deadline = time.monotonic() + 30
    while True:  # reaper passes (every 0.5 s) re-send it, and fail, while Redis is down
        events = client.get(f"/fine-tuning/task/{task['id']}/events").json()
        failures = [e for e in events if e["kind"] == "dispatch_failed"]
        if failures and failures[0]["detail"].get("repeats", 0) >= 3:
            break
        assert time.monotonic() < deadline, events
        time.sleep(0.1)

    assert [e["kind"] for e in events] == ["created", "dispatched", "dispatch_failed"]
    assert failures[0]["detail"]["error"]
    assert failures[0]["detail"]["last_error"]
