"""The fine-tuning plugin interface.

A plugin knows how to validate and fine-tune one family of models. It knows nothing of
HTTP, the database or the broker: the worker hands it plain descriptions of the task, the
batch and the base model, and a ``report`` through which it publishes progress and learns
whether it must stop.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class TrainingStopped(Exception):
    """Raised by a plugin when ``report.should_stop()`` asked it to stop early."""


class PluginError(Exception):
    """A failure the plugin can name: ends the task ``failed`` with this code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidModel(PluginError):
    """The model directory cannot be loaded by this plugin."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_model", message)


@dataclass(frozen=True)
class BatchSpec:
    """A training batch: a JSONL file of ``{"query", "positive", "negative"?}`` objects."""

    id: str
    path: Path
    num_examples: int


@dataclass(frozen=True)
class TaskSpec:
    """What the plugin needs to know of the task, and the worker's settings for its run."""

    id: str
    metadata: dict[str, Any]
    #: The batch named by the task's validation option, to evaluate on instead of a split.
    validation_batch: BatchSpec | None = None
    #: Save a resumable checkpoint at least this often (training steps).
    checkpoint_every: int = 50
    #: Log the run to this MLflow tracking server when set.
    mlflow_tracking_uri: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """The base model: a directory the plugin can load."""

    id: str
    path: Path


@dataclass
class TrainingResult:
    """What a finished training produced.

    ``model_dir`` holds the best model, saved in the plugin's own format; the worker copies
    it to the artifact store. ``metrics`` is stored on the task as is (JSON) and should hold
    ``before``, ``after``, ``improved`` and ``loss_curve`` when the plugin evaluates.
    """

    model_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    #: Kept checkpoints (saved models) a user may register instead of the final model.
    checkpoints: list[Checkpoint] = field(default_factory=list)


@dataclass(frozen=True)
class Checkpoint:
    """A model saved during training, with its held-out metrics and training loss."""

    name: str
    step: int
    model_dir: Path
    metrics: dict[str, float]
    loss: float | None
    best: bool = False
    last: bool = False


class TrainingReport(Protocol):
    """The worker's side of a running training."""

    @property
    def work_dir(self) -> Path:
        """A directory private to this task: checkpoints and the output model go here.

        It survives a worker crash, so a recovered task can resume from what it holds.
        """
        ...

    def progress(
        self,
        fraction: float,
        *,
        step: int | None = None,
        total_steps: int | None = None,
        epoch: float | None = None,
        trial: int | None = None,
        loss: float | None = None,
        learning_rate: float | None = None,
        tokens: int | None = None,
    ) -> None:
        """Publish progress (0.0 to 1.0) and the current position; cheap to call often.

        Followers see it live (at most a few events a second; the last one always arrives).
        ``tokens`` counts the input tokens (padding excluded) trained on so far in this run.
        """
        ...

    def evaluated(
        self, metrics: dict[str, float], *, step: int | None = None, epoch: float | None = None
    ) -> None:
        """Publish a held-out evaluation made during training (an ``evaluated`` event)."""
        ...

    def checkpoint_saved(self, step: int, *, name: str | None = None) -> None:
        """Publish that a checkpoint of ``step`` was saved (a ``checkpoint_saved`` event)."""
        ...

    def should_stop(self) -> bool:
        """True once the task was canceled or the worker is shutting down."""
        ...


class FineTuningPlugin(abc.ABC):
    """A fine-tuning method, found through the ``embedtune.plugins`` entry-point group."""

    #: False for plugins that can serve a model but not fine-tune it.
    can_fine_tune: bool = True
    #: Whether a task needs a training batch (checked when the task is created).
    requires_batch: bool = True

    @abc.abstractmethod
    def validate_model(self, path: Path) -> None:
        """Load the model at ``path`` once; raises :class:`InvalidModel` if it cannot."""

    @abc.abstractmethod
    def validate_training_options(self, metadata: dict[str, Any]) -> None:
        """Check the task metadata at create time; raises ``ValueError`` with a readable
        message naming the bad option."""

    def validate_batch_size(self, metadata: dict[str, Any], num_examples: int) -> None:
        """Check at create time that a batch of ``num_examples`` leaves enough to train on;
        raises ``ValueError`` saying why not. The default accepts any batch."""
        return None

    def validation_batch_id(self, metadata: dict[str, Any]) -> str | None:
        """The id of the batch the task evaluates on, if its options name one."""
        return None

    @abc.abstractmethod
    def train(
        self,
        task: TaskSpec,
        batch: BatchSpec,
        base_model: ModelSpec,
        report: TrainingReport,
    ) -> TrainingResult:
        """Fine-tune ``base_model`` on ``batch``.

        Raises :class:`TrainingStopped` when ``report.should_stop()`` said so, and
        :class:`PluginError` (or any exception) on failure.
        """
