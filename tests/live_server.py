"""A real embedtune server on a free 127.0.0.1 port, for the client, CLI and browser tests.

``uvicorn`` runs the app (lifespan, embedded worker and all) in a thread against the test
database that ``settings_env`` configured.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from embedtune.auth import service as auth
from embedtune.client import Client
from embedtune.core.db import new_session

SCRIPTED_MODEL = "scripted-base"
EXAMPLES = [{"query": f"q{i}", "positive": f"p{i}"} for i in range(4)]


@dataclass
class LiveServer:
    url: str

    def client(self, api_key: str | None = None, **options: Any) -> Client:
        return Client(self.url, api_key, **options)

    def wait_for_auth(self, timeout: float = 5.0) -> None:
        """Until the server has seen a new key (it caches the key list for a second)."""
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/models").status_code != 401:
            assert time.monotonic() < deadline, "auth did not turn on"
            time.sleep(0.05)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Runs ``app`` under uvicorn on a free 127.0.0.1 port; yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # Streams a browser still holds open (the task list's events) are cut after a second,
    # instead of holding the shutdown until the join's timeout.
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        listener.close()


@pytest.fixture
def live_server(settings_env: dict[str, str]) -> Iterator[LiveServer]:
    from embedtune.app import create_app

    with serving(create_app()) as url:
        yield LiveServer(url)


@pytest.fixture
def live_model(live_server: LiveServer, tmp_path: Path) -> str:
    """A model trained by the scripted test plugin, registered on the live server."""
    directory = tmp_path / SCRIPTED_MODEL
    directory.mkdir()
    (directory / "model.txt").write_text("base\n")
    with live_server.client() as client:
        client.models.register("base", str(directory), model_id=SCRIPTED_MODEL, plugin="scripted")
    return SCRIPTED_MODEL


@pytest.fixture
def live_batch(live_server: LiveServer) -> str:
    with live_server.client() as client:
        return client.batches.create(EXAMPLES, name="tiny").id


def create_api_key(name: str = "test") -> str:
    """A key created the way ``embedtune keys create`` does, on the configured database."""
    with new_session(writer=True) as session:
        _, secret = auth.create_key(session, name)
        session.commit()
    return secret


def script(steps: int = 3, step_seconds: float = 0.01, **more: Any) -> dict[str, Any]:
    """Task metadata for the scripted plugin."""
    return {"script": {"steps": steps, "step_seconds": step_seconds, **more}}
