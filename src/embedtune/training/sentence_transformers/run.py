"""One call of ``SentenceTransformersPlugin.train``: trials, evaluation, checkpoints, result.

Data. The batch is split by a content hash (:func:`~embedtune.training.data.split_examples`)
unless the task names a validation batch: then all of the batch trains and the validation
batch is the held-out set. Hard negatives, when asked for, are mined once per run from the
training documents with the base model (cached in the work directory for a resume).

Evaluation. An ``InformationRetrievalEvaluator`` on the held-out set scores the base model
once, then runs every ``eval_steps`` and at the last step; each evaluation saves a
checkpoint, the trainer keeps the best (by ``metric_for_best``) and the last, and with
``load_best_model_at_end`` the best is the result.

Trials. ``trials`` > 1 walks the first points of the grid of ``options.TRIAL_GRID`` with the
same seed and data order and keeps the best. A grid, not ``Trainer.hyperparameter_search``:
its trials are fixed in advance, so a worker that crashes resumes the current trial from its
checkpoint and skips the finished ones (``run.json``), and the first trial is always the
requested settings.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
from transformers import EarlyStoppingCallback, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from embedtune.training.data import Example, load_examples, split_examples
from embedtune.training.evaluation import distractors, metric_names, retrieval_evaluator
from embedtune.training.options import TrainingOptions
from embedtune.training.plugin import (
    BatchSpec,
    Checkpoint,
    ModelSpec,
    PluginError,
    TaskSpec,
    TrainingReport,
    TrainingResult,
    TrainingStopped,
)
from embedtune.training.sentence_transformers import recipe as recipes
from embedtune.training.sentence_transformers.callbacks import Progress, ReportCallback, curves
from embedtune.training.sentence_transformers.card import save_with_card
from embedtune.training.sentence_transformers.loading import load_model, release_memory
from embedtune.training.sentence_transformers.mining import mine
from embedtune.training.sentence_transformers.state import (
    RunState,
    TrialOutcome,
    TrialParams,
    checkpoint_step,
    fingerprint,
    last_complete_checkpoint,
)
from embedtune.training.sentence_transformers.tracking import Tracker

logger = logging.getLogger(__name__)

FINAL_DIR = "final"
MINED_FILE = "mined.jsonl"
#: Files of a trainer checkpoint that are not part of the model.
_TRAINER_FILES = {
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",
    "scaler.pt",
    "trainer_state.json",
    "training_args.bin",
}


class _Trainer(SentenceTransformerTrainer):
    """The library's trainer without its model-card callback, counting input tokens.

    That callback copies training examples into the saved model's README (customer data
    would leave with every model); :func:`save_with_card` writes a card without them.
    """

    def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
        """Add nothing (see the class docstring)."""

    def training_step(
        self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        """The library's step, counting the batch's input tokens (padding excluded) into
        ``state.num_input_tokens_seen``, which checkpoints keep. The trainer's own count
        looks for ``input_ids``, and sentence-transformers names each column's
        ``{column}_input_ids``."""
        self.state.num_input_tokens_seen += sum(
            int(value.sum()) for key, value in inputs.items() if key.endswith("attention_mask")
        )
        return super().training_step(model, inputs, num_items_in_batch)


class Run:
    """One training of ``base_model`` on ``batch`` for ``task``."""

    def __init__(
        self,
        task: TaskSpec,
        options: TrainingOptions,
        batch: BatchSpec,
        base_model: ModelSpec,
        report: TrainingReport,
    ) -> None:
        self.task = task
        self.options = options
        self.base_model = base_model
        self.report = report
        self.root = report.work_dir / "checkpoints"
        examples = load_examples(batch.path)
        paths = [batch.path]
        if task.validation_batch is not None:
            self.train, self.eval = examples, load_examples(task.validation_batch.path)
            self.eval_source = f"validation batch {task.validation_batch.id}"
            paths.append(task.validation_batch.path)
        else:
            split = split_examples(examples)
            self.train, self.eval = split.train, split.eval
            self.eval_source = "held out of the batch"
        if not self.train:
            raise PluginError(
                "empty_train_split",
                f"all {len(examples)} example(s) are held out for evaluation; "
                "the batch needs more examples to train on",
            )
        if not self.eval:
            raise PluginError("empty_validation_batch", "the validation batch has no examples")
        self.evaluator = retrieval_evaluator(self.eval, distractors(self.train, self.eval))
        self.state = RunState.load(
            self.root, fingerprint(paths, options.model_dump(), base_model.id)
        )

    def execute(self) -> TrainingResult:
        """Run every trial not yet finished, then return the best one's model."""
        base = load_model(self.base_model.path)
        try:
            self.recipe = recipes.resolve(
                self.options, self.train, base.max_seq_length or 512, recipes.token_counter(base)
            )
            dims = base.get_embedding_dimension() or 0
            if self.recipe.matryoshka_dims and self.recipe.matryoshka_dims[0] > dims:
                raise PluginError(
                    "invalid_training_options",
                    f"training.matryoshka_dims: the model has {dims} dimensions, "
                    f"got {self.recipe.matryoshka_dims}",
                )
            train = self._training_examples(base)
        finally:
            del base
            release_memory()
        self.datasets = recipes.to_datasets(train)
        self.mined = sum(1 for ex in train if ex.negative is not None) - sum(
            1 for ex in self.train if ex.negative is not None
        )
        plan = TrialParams.plan(
            self.options.trials,
            self.recipe.learning_rate,
            self.recipe.epochs,
            self.recipe.max_steps,
        )
        progress = Progress(
            self.report,
            [
                p.max_steps
                or recipes.planned_steps(self.datasets, self.recipe.batch_size, p.epochs)
                for p in plan
            ],
        )
        for outcome in self.state.outcomes.values():
            progress.set_trial_steps(outcome.params.trial, outcome.steps)
        started = time.perf_counter()
        with Tracker(self.task.mlflow_tracking_uri, self.task.id, self.recipe.to_json()) as tracker:
            for params in plan:
                if params.trial in self.state.outcomes:
                    logger.info("trial %d already finished, skipped", params.trial)
                    continue
                if self.report.should_stop():
                    raise TrainingStopped()
                with tracker.trial(params.trial) as callbacks:
                    outcome = self._run_trial(params, progress, callbacks)
                self.state.outcomes[params.trial] = outcome
                self._keep_best_only()
                self.state.save(self.root)
            logger.info("trials took %.1f s", time.perf_counter() - started)
            return self._finish(plan, tracker)

    def _training_examples(self, base: SentenceTransformer) -> list[Example]:
        """The training examples, with mined hard negatives when asked for (cached)."""
        if self.state.before is None:
            self.state.before = metric_names(self.evaluator(base))
            self.state.save(self.root)
        if self.options.hard_negatives is None:
            return self.train
        cache = self.root / MINED_FILE
        if cache.exists():
            rows = [json.loads(line) for line in cache.read_text().splitlines()]
            return [Example(*row) for row in rows]
        torch.manual_seed(self.options.seed)
        base.max_seq_length = self.recipe.max_seq_length
        mined = mine(base, self.train, self.options.hard_negatives)
        cache.write_text(
            "".join(json.dumps([e.query, e.positive, e.negative]) + "\n" for e in mined)
        )
        return mined

    def _run_trial(
        self, params: TrialParams, progress: Progress, extra: list[TrainerCallback]
    ) -> TrialOutcome:
        """Train one trial, resuming from its latest checkpoint if there is one."""
        output_dir = self.root / f"trial-{params.trial}"
        model = load_model(self.base_model.path)
        guide = load_model(self.base_model.path) if self.recipe.loss == "gist" else None
        trainer: _Trainer | None = None
        try:
            model.max_seq_length = self.recipe.max_seq_length
            callback = ReportCallback(self.report, progress, params.trial)
            steps = params.max_steps or recipes.planned_steps(
                self.datasets, self.recipe.batch_size, params.epochs
            )
            callbacks: list[TrainerCallback] = [callback, *extra]
            if self.recipe.early_stopping_patience:
                callbacks.append(EarlyStoppingCallback(self.recipe.early_stopping_patience))
            trainer = _Trainer(
                model=model,
                args=recipes.training_arguments(
                    self.recipe,
                    output_dir=output_dir,
                    learning_rate=params.learning_rate,
                    epochs=params.epochs,
                    max_steps=params.max_steps,
                    eval_steps=recipes.eval_interval(
                        self.options.eval_steps, steps, self.task.checkpoint_every
                    ),
                    report_to=[],
                    run_name=f"{self.task.id}-trial-{params.trial}",
                ),
                train_dataset=self.datasets,
                evaluator=self.evaluator,
                loss=recipes.build_loss(self.recipe, model, guide),
                callbacks=callbacks,
            )
            # disable_tqdm swaps the progress bar for a callback that prints every log line.
            trainer.remove_callback(PrinterCallback)
            checkpoint = last_complete_checkpoint(output_dir)
            if checkpoint is not None:
                logger.info("trial %d resumes from %s", params.trial, checkpoint)
            output = trainer.train(resume_from_checkpoint=checkpoint)
            if callback.stopped:
                raise TrainingStopped()
            loss_curve, eval_curve = curves(trainer.state.log_history, params.trial)
            best_step = checkpoint_step(Path(trainer.state.best_model_checkpoint or ""))
            after = _metrics_at(
                eval_curve, best_step if self.recipe.load_best_model_at_end else None
            )
            checkpoints = _kept_checkpoints(output_dir, eval_curve, loss_curve, best_step)
            assert self.state.before is not None  # set before the first trial
            save_with_card(
                model,
                output_dir / FINAL_DIR,
                task_id=self.task.id,
                base_model_id=self.base_model.id,
                recipe={
                    **self.recipe.to_json(),
                    "learning_rate": params.learning_rate,
                    "epochs": params.epochs,
                    "max_steps": params.max_steps,
                },
                metrics={
                    "before": self.state.before,
                    "after": after,
                    "train_examples": len(self.train),
                    "eval_examples": len(self.eval),
                    "eval_source": self.eval_source,
                },
            )
            return TrialOutcome(
                params=params,
                after=after,
                steps=trainer.state.global_step,
                train_runtime_s=float(output.metrics["train_runtime"]),
                loss_curve=loss_curve,
                eval_curve=eval_curve,
                checkpoints=checkpoints,
            )
        finally:
            # Dropped here, not by the caller: an exception's traceback keeps this frame alive.
            del model, guide, trainer
            release_memory()

    def _best(self) -> TrialOutcome:
        # Ties go to the earlier trial, i.e. closer to the requested settings.
        metric = self.recipe.metric_for_best
        return max(self.state.outcomes.values(), key=lambda o: (o.after[metric], -o.params.trial))

    def _keep_best_only(self) -> None:
        """Delete the models and checkpoints of the trials that are not (or no longer) best."""
        best = self._best().params.trial
        for trial in self.state.outcomes:
            if trial != best:
                shutil.rmtree(self.root / f"trial-{trial}", ignore_errors=True)

    def _finish(self, plan: list[TrialParams], tracker: Tracker) -> TrainingResult:
        best = self._best()
        trial_dir = self.root / f"trial-{best.params.trial}"
        best_dir = self.report.work_dir / "best"
        kept_dir = self.report.work_dir / "kept"
        shutil.rmtree(best_dir, ignore_errors=True)
        shutil.rmtree(kept_dir, ignore_errors=True)
        shutil.move(trial_dir / FINAL_DIR, best_dir)
        checkpoints = [
            Checkpoint(
                name=info["name"],
                step=info["step"],
                model_dir=_copy_model(
                    trial_dir / f"checkpoint-{info['step']}", kept_dir / info["name"]
                ),
                metrics=info["metrics"],
                loss=info["loss"],
                best=info["best"],
                last=info["last"],
            )
            for info in best.checkpoints
        ]
        before = self.state.before
        assert before is not None  # set before the first trial
        outcomes = [self.state.outcomes[p.trial] for p in plan]
        metric = self.recipe.metric_for_best
        metrics: dict[str, Any] = {
            "before": before,
            "after": best.after,
            "improved": best.after[metric] > before[metric],
            "loss_curve": [point for o in outcomes for point in o.loss_curve],
            "eval_curve": [point for o in outcomes for point in o.eval_curve],
            "trials": [
                {"params": o.params.__dict__, "after": o.after, "steps": o.steps} for o in outcomes
            ],
            "best_trial": best.params.trial,
            "recipe": self.recipe.to_json(),
            "train_examples": len(self.train),
            "eval_examples": len(self.eval),
            "eval_source": self.eval_source,
            "mined_negatives": self.mined,
            "train_runtime_s": sum(o.train_runtime_s for o in outcomes),
            "checkpoints": best.checkpoints,
        }
        tracker.finish(metrics, best_dir)
        shutil.rmtree(self.root, ignore_errors=True)
        self.report.progress(1.0)
        return TrainingResult(model_dir=best_dir, metrics=metrics, checkpoints=checkpoints)


def _metrics_at(eval_curve: list[dict[str, float | int]], step: int | None) -> dict[str, float]:
    """The held-out metrics of the evaluation at ``step`` (None: the last evaluation)."""
    if not eval_curve:
        raise PluginError("no_evaluation", "training ended before any held-out evaluation")
    points = [p for p in eval_curve if p["step"] == step] or eval_curve[-1:]
    return {k: float(v) for k, v in points[-1].items() if k not in ("step", "trial")}


def _kept_checkpoints(
    output_dir: Path,
    eval_curve: list[dict[str, float | int]],
    loss_curve: list[dict[str, float | int]],
    best_step: int | None,
) -> list[dict[str, Any]]:
    """The evaluated checkpoints the trainer kept (the best and the last), oldest first."""
    evaluated = {int(p["step"]) for p in eval_curve}
    steps = sorted(
        step
        for path in output_dir.glob("checkpoint-*")
        if (step := checkpoint_step(path)) is not None and step in evaluated
    )
    losses = {int(p["step"]): float(p["loss"]) for p in loss_curve}
    return [
        {
            "name": f"step-{step}",
            "step": step,
            "metrics": _metrics_at(eval_curve, step),
            "loss": losses.get(step),
            "best": step == best_step,
            "last": step == steps[-1],
        }
        for step in steps
    ]


def _copy_model(checkpoint: Path, target: Path) -> Path:
    """The model files of a trainer checkpoint, without the optimizer and trainer state."""
    shutil.copytree(
        checkpoint, target, ignore=lambda _dir, names: [n for n in names if n in _TRAINER_FILES]
    )
    return target
