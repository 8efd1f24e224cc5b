"""Trainer callbacks: progress and stop requests through the worker's ``report``."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from embedtune.training.evaluation import metric_names
from embedtune.training.plugin import TrainingReport


class Progress:
    """Turns trainer steps of each trial into one 0→1 fraction over all trials.

    Steps are counted across trials; the plan's step counts are estimates until a trial's
    trainer starts and gives its exact ``max_steps``.
    """

    def __init__(self, report: TrainingReport, planned_steps: list[int]) -> None:
        self._report = report
        self._steps = planned_steps
        self._tokens = [0] * len(planned_steps)
        self._last = 0.0

    def set_trial_steps(self, trial: int, steps: int) -> None:
        self._steps[trial] = steps

    def update(
        self,
        trial: int,
        step: int,
        epoch: float | None,
        loss: float | None,
        learning_rate: float | None = None,
        tokens: int | None = None,
    ) -> None:
        if tokens is not None:
            self._tokens[trial] = tokens
        done = sum(self._steps[:trial]) + step
        total = sum(self._steps)
        # Monotone even when an estimate is corrected downwards or upwards mid-run.
        self._last = max(self._last, min(done / total, 1.0))
        self._report.progress(
            self._last,
            step=done,
            total_steps=total,
            epoch=epoch,
            trial=trial,
            loss=loss,
            learning_rate=learning_rate,
            tokens=sum(self._tokens) if tokens is not None else None,
        )


class ReportCallback(TrainerCallback):
    """Publishes progress after every logged step, stops the trainer when asked to, and
    has the last step evaluated and saved whatever ``eval_steps`` is.

    ``should_stop`` is checked in ``on_step_end``: the trainer only looks at
    ``should_training_stop`` after a step, so checking in ``on_step_begin`` would not stop
    any sooner. Stopping also saves a checkpoint, so a worker shut down mid-trial resumes
    from exactly there.
    """

    def __init__(self, report: TrainingReport, progress: Progress, trial: int) -> None:
        self._report = report
        self._progress = progress
        self._trial = trial
        self.stopped = False

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self._progress.set_trial_steps(self._trial, state.max_steps)

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if self._report.should_stop():
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True
            # A stop is not a result: no evaluation on the way out.
            control.should_evaluate = False
        elif state.global_step >= state.max_steps:
            # The last step is always scored and saved: the last checkpoint is a candidate.
            control.should_evaluate = True
            control.should_save = True

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs is not None and "loss" in logs:
            self._progress.update(
                self._trial,
                state.global_step,
                state.epoch,
                logs["loss"],
                logs.get("learning_rate"),
                tokens=state.num_input_tokens_seen,
            )

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if metrics:
            self._report.evaluated(dict(metrics), step=state.global_step, epoch=state.epoch)

    def on_save(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        self._report.checkpoint_saved(
            state.global_step, name=f"trial-{self._trial}/checkpoint-{state.global_step}"
        )


def curves(
    log_history: list[dict[str, Any]], trial: int
) -> tuple[list[dict[str, float | int]], list[dict[str, float | int]]]:
    """The loss curve and the held-out eval curve of a trainer's ``log_history``."""
    loss_curve: list[dict[str, float | int]] = [
        {"step": entry["step"], "loss": entry["loss"], "trial": trial}
        for entry in log_history
        if "loss" in entry
    ]
    eval_curve: list[dict[str, float | int]] = [
        {"step": entry["step"], "trial": trial, **metric_names(entry, prefix="eval_")}
        for entry in log_history
        if any(key.startswith("eval_") and key.endswith("mrr@10") for key in entry)
    ]
    return loss_curve, eval_curve
