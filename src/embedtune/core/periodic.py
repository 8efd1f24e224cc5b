"""The background loops' common shape: one step every interval, on a thread, until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class PeriodicLoop:
    """Runs ``step`` every ``interval`` seconds on a daemon thread named ``name``, from
    ``start()`` until ``stop()``. A step that raises is logged and the loop goes on."""

    def __init__(self, name: str, interval: float, step: Callable[[], object]) -> None:
        self._name = name
        self._interval = interval
        self._step = step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stops the loop and waits for a step in progress to end."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._step()
            except Exception:
                logger.exception("%s pass failed", self._name)
