"""The loops each API process runs for deployments: follow the blue model, take up the
deployments that wait their turn, and export models for the fast engines."""

from __future__ import annotations

from embedtune.core.config import Settings
from embedtune.core.periodic import PeriodicLoop
from embedtune.deployments import exports, serving, waits
from embedtune.deployments.inference import Inference


class DeploymentLoops:
    """Started and stopped by the app's lifespan."""

    def __init__(self, settings: Settings, inference: Inference) -> None:
        self._loops = [
            PeriodicLoop(
                "embedtune-blue-refresh",
                settings.blue_refresh_interval,
                lambda: serving.refresh_blue(inference),
            ),
            PeriodicLoop(
                "embedtune-deploy-waits",
                settings.reaper_interval,
                lambda: waits.decide_waiting(settings, inference),
            ),
            # Its own thread: an export takes seconds to minutes and must delay nothing.
            PeriodicLoop(
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
