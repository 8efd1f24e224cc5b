"""What the queue tests share: worker processes, the scripted plugin's logs, the task's
events and models as the API shows them, and a TCP proxy to take a broker away."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from conftest import event_kinds, read_log, wait_for_log
from embedtune.core.config import get_settings

__all__ = ["event_kinds", "read_log", "wait_for_log"]

#: Its own Redis database, so that test runs side by side do not flush each other's queues.
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('EMBEDTUNE_TEST_REDIS_DB', '14')}"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672"
BROKER_URLS = {"embedded": "", "redis": REDIS_URL, "rabbitmq": RABBITMQ_URL}
EMBEDTUNE = Path(sys.executable).with_name("embedtune")


@dataclass
class WorkerProcesses:
    """One ``embedtune worker`` supervisor and its log."""

    process: subprocess.Popen[bytes]
    log: Path
    stopped: bool = field(default=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, processes: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.output().count("worker process ready") < processes:
            assert self.process.poll() is None, f"worker exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"workers not ready:\n{self.output()}"
            time.sleep(0.1)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, as a service manager does; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


def events_of(client: TestClient, task_id: str, kind: str) -> list[dict[str, Any]]:
    response = client.get(f"/fine-tuning/task/{task_id}/events")
    return [event for event in response.json() if event["kind"] == kind]


def models_of(client: TestClient, task_id: str) -> list[dict[str, Any]]:
    """Models registered by ``task_id``: one per completed training."""
    models: list[dict[str, Any]] = client.get("/models", params={"limit": 1000}).json()
    return [model for model in models if model.get("task_id") == task_id]


def drain(client: TestClient, timeout: float = 30.0) -> None:
    """Until the broker's queue holds no message, plus the time to drop one in flight."""
    queue: Any = client.app.state.dispatcher  # type: ignore[attr-defined]
    queue.broker.join(get_settings().queue_name, timeout=int(timeout * 1000))
    time.sleep(0.5)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``down()`` refuses connections and cuts the
    open ones, as a broker outage does."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target_port))
            with self._lock:
                self._connections += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, target), daemon=True).start()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
