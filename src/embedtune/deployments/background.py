"""The loops each API process runs for deployments: follow the blue model, take up the
deployments that wait their turn, and export models for the fast engines."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from embedtune.config import Settings
from embedtune.deployments import exports, service
from embedtune.deployments.inference import Inference

logger = logging.getLogger(__name__)


class _Periodic:
    def __init__(self, name: str, interval: float, step: Callable[[], object]) -> None:
        self._interval = interval
        self._step = step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._step()
            except Exception:
                logger.exception("%s pass failed", self._thread.name)


class DeploymentLoops:
    """Started and stopped by the app's lifespan."""

    def __init__(self, settings: Settings, inference: Inference) -> None:
        self._loops = [
            _Periodic(
                "embedtune-blue-refresh",
                settings.blue_refresh_interval,
                lambda: service.refresh_blue(inference),
            ),
            _Periodic(
                "embedtune-deploy-waits",
                settings.reaper_interval,
                lambda: service.decide_waiting(settings, inference),
            ),
            # Its own thread: an export takes seconds to minutes and must delay nothing.
            _Periodic(
                "embedtune-exports",
                settings.export_interval,
                lambda: exports.export_pass(settings, inference),
            ),
        ]

    def start(self) -> None:
        for loop in self._loops:
            loop.start()

    def stop(self) -> None:
        for loop in self._loops:
            loop.stop()
