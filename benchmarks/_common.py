"""Helpers the benchmark scripts share: a real server in a subprocess, and latency figures."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

BENCHMARKS_DIR = Path(__file__).resolve().parent

#: What an embedtune server under measurement runs with: no reaper passes, warnings only,
#: and torch serving, so that no export of the bundled model for the fast engines runs in
#: the background (about 15 s of every core, taken from the measured requests).
MEASURED_SERVER_ENV = {
    "EMBEDTUNE_REAPER_INTERVAL": str(10**9),
    "EMBEDTUNE_INFERENCE_BACKEND": "torch",
    "EMBEDTUNE_LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def uvicorn_server(
    app_factory: str, env: Mapping[str, str], health_path: str, start_timeout: float = 180.0
) -> Iterator[str]:
    """Runs ``app_factory`` (``module:function``) under uvicorn, one process, on a free port
    of 127.0.0.1, without access log; yields its base URL once ``health_path`` answers 200.

    Modules of ``benchmarks/`` are importable by the server. Raises ``RuntimeError`` with the
    server's log if it exits or does not answer within ``start_timeout`` seconds.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        app_factory,
        "--app-dir",
        str(BENCHMARKS_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_until_up(process, base_url + health_path, start_timeout, log)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(
    process: subprocess.Popen[bytes], url: str, timeout: float, log: IO[bytes]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    log.seek(0)
    output = log.read().decode(errors="replace")[-4000:]
    raise RuntimeError(f"server for {url} did not come up (exit code {process.poll()}):\n{output}")


@dataclass(frozen=True)
class Latency:
    """Milliseconds."""

    p50: float
    p99: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        """Needs at least two samples."""
        return cls(
            p50=statistics.median(seconds) * 1000,
            p99=statistics.quantiles(seconds, n=100, method="inclusive")[98] * 1000,
        )

    def __str__(self) -> str:
        return f"p50 {self.p50:7.2f} ms  p99 {self.p99:7.2f} ms"
