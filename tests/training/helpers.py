"""Helpers shared by the training tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedtune.training.data import Example
from embedtune.training.plugin import BatchSpec, TaskSpec


@dataclass
class RecordingReport:
    """A ``TrainingReport`` that records progress and stops once a given step was reported."""

    work_dir: Path
    stop_after_step: int | None = None
    calls: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    evaluations: list[tuple[dict[str, float], dict[str, Any]]] = field(default_factory=list)
    checkpoints: list[int] = field(default_factory=list)

    def progress(self, fraction: float, **position: Any) -> None:
        self.calls.append((fraction, position))

    def evaluated(self, metrics: dict[str, float], **position: Any) -> None:
        self.evaluations.append((metrics, position))

    def checkpoint_saved(self, step: int, **detail: Any) -> None:
        self.checkpoints.append(step)

    def should_stop(self) -> bool:
        return self.stop_after_step is not None and self.last_step >= self.stop_after_step

    @property
    def steps(self) -> list[int]:
        """The steps reported, in order."""
        return [pos["step"] for _, pos in self.calls if pos.get("step") is not None]

    @property
    def last_step(self) -> int:
        return self.steps[-1] if self.steps else 0

    @property
    def fractions(self) -> list[float]:
        return [fraction for fraction, _ in self.calls]


BatchFactory = Callable[[list[Example]], BatchSpec]
ReportFactory = Callable[..., RecordingReport]


def task(*, checkpoint_every: int = 50, mlflow: str | None = None, **training: Any) -> TaskSpec:
    """A task whose ``metadata.training`` holds ``training``, run with those settings."""
    return TaskSpec(
        id="task",
        metadata={"training": training},
        checkpoint_every=checkpoint_every,
        mlflow_tracking_uri=mlflow,
    )
