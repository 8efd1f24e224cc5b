"""The sentence-transformers plugin: validation at create time, and training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from embedtune.training.data import eval_size
from embedtune.training.options import TRAINING_OPTION_NAMES, TrainingOptions, misplaced_option
from embedtune.training.plugin import (
    BatchSpec,
    FineTuningPlugin,
    ModelSpec,
    PluginError,
    TaskSpec,
    TrainingReport,
    TrainingResult,
)
from embedtune.training.sentence_transformers.loading import (
    load_model,
    no_progress_bars,
    release_memory,
)
from embedtune.training.sentence_transformers.run import Run

#: Fewer training pairs than this (after the held-out split) teach a model nothing.
MIN_TRAIN_EXAMPLES = 16


class SentenceTransformersPlugin(FineTuningPlugin):
    """Fine-tunes any model Sentence-Transformers can load (see :mod:`.run`)."""

    def validate_model(self, path: Path) -> None:
        """Load the model at ``path`` once on CPU; raises :class:`InvalidModel` if that fails."""
        with no_progress_bars():
            model = load_model(path, device="cpu")
        del model
        release_memory()

    def validate_training_options(self, metadata: dict[str, Any]) -> None:
        """Check ``metadata["training"]``, and that no training option sits at the top level
        of ``metadata``; raises ``ValueError`` naming the option."""
        if hint := misplaced_option(metadata, TRAINING_OPTION_NAMES, "training"):
            raise ValueError(hint)
        TrainingOptions.from_metadata(metadata)

    def validation_batch_id(self, metadata: dict[str, Any]) -> str | None:
        return TrainingOptions.from_metadata(metadata).validation_batch_id

    def validate_batch_size(self, metadata: dict[str, Any], num_examples: int) -> None:
        """Refuse a batch that leaves fewer than 16 pairs to train on; raises ``ValueError``."""
        separate = self.validation_batch_id(metadata) is not None
        train = num_examples if separate else num_examples - eval_size(num_examples)
        if train < MIN_TRAIN_EXAMPLES:
            held = "" if separate else f" after {num_examples - train} are held out for evaluation"
            raise ValueError(
                f"the batch leaves {train} example(s) to train on{held}; "
                f"at least {MIN_TRAIN_EXAMPLES} are needed"
            )

    def train(
        self,
        task: TaskSpec,
        batch: BatchSpec,
        base_model: ModelSpec,
        report: TrainingReport,
    ) -> TrainingResult:
        """Fine-tune ``base_model`` on ``batch`` and return the best trial's model.

        Raises :class:`TrainingStopped` when ``report.should_stop()`` turned true (the
        checkpoints stay for a resume, no model is written to ``best``),
        :class:`InvalidModel` when the base model cannot be loaded, and :class:`PluginError`
        with code ``empty_train_split`` (nothing left to train on after holding out the
        evaluation examples), ``invalid_training_options`` or ``out_of_memory``.
        """
        try:
            options = TrainingOptions.from_metadata(task.metadata)
        except ValueError as exc:
            raise PluginError("invalid_training_options", str(exc)) from exc
        try:
            with no_progress_bars():
                return Run(task, options, batch, base_model, report).execute()
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise PluginError("out_of_memory", f"out of memory while training: {exc}") from exc
        except RuntimeError as exc:
            # The CPU allocator reports exhaustion as a plain RuntimeError.
            if "out of memory" in str(exc) or "can't allocate memory" in str(exc):
                raise PluginError("out_of_memory", f"out of memory while training: {exc}") from exc
            raise
        finally:
            release_memory()
