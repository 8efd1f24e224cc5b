"""Fine-tuning of Sentence-Transformers models with the library's own trainer.

Training data. Every example trains with ``MultipleNegativesRankingLoss``: the other
positives of the batch are its negatives, and ``BatchSamplers.NO_DUPLICATES`` keeps a text
from appearing twice in one batch (a duplicate would be a false negative). Examples that
carry a hard ``negative`` form a second ``(anchor, positive, negative)`` dataset next to the
``(anchor, positive)`` one; the trainer draws each batch from one of the two
(``MultiDatasetBatchSamplers.PROPORTIONAL``), so a batch has uniform columns and the same
loss scores its hard negatives alongside the in-batch ones.

Evaluation. The batch is split by a content hash (:func:`~embedtune.training.data.split_examples`);
the held-out part is scored as retrieval before and after training.

Trials. ``trials`` > 1 walks the first ``trials`` points of :data:`TRIAL_GRID` (factors on the
learning rate and the training length) with the same seed and data order, and keeps the
best by held-out MRR@10.

Checkpoints. Each trial trains in ``work_dir/checkpoints/trial-<n>`` and checkpoints there
every ``checkpoint_every`` steps and when asked to stop; ``work_dir/checkpoints/run.json``
records the finished trials, so a recovered task skips them and resumes the current one
from its latest checkpoint. The winner is moved to ``work_dir/best`` at the end and the
checkpoints are removed.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers
from sentence_transformers.sentence_transformer.losses import (
    MultipleNegativesRankingLoss,
)
from transformers import (
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback
from transformers.utils import logging as transformers_logging

from embedtune.config import get_settings
from embedtune.training.data import Example, load_examples, split_examples
from embedtune.training.evaluation import retrieval_metrics
from embedtune.training.plugin import (
    BatchSpec,
    FineTuningPlugin,
    InvalidModel,
    ModelSpec,
    PluginError,
    TaskSpec,
    TrainingReport,
    TrainingResult,
    TrainingStopped,
)

logger = logging.getLogger(__name__)

#: (learning-rate factor, training-length factor) of each trial, in the order they run.
#: The length factor scales ``epochs``, or ``max_steps`` when that is given.
TRIAL_GRID: tuple[tuple[float, float], ...] = tuple(
    (lr, length) for length in (1.0, 2.0, 0.5, 3.0) for lr in (1.0, 3.0, 1 / 3, 10.0, 0.1)
)
MAX_EPOCHS = 100
MAX_STEPS = 1_000_000
MAX_TRIALS = len(TRIAL_GRID)
_STATE_FILE = "run.json"
_FINAL_DIR = "final"


@dataclass(frozen=True)
class TrainingOptions:
    """``metadata["training"]``, with the defaults filled in."""

    epochs: float = 1.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    max_steps: int | None = None
    trials: int = 1
    seed: int = 42

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> TrainingOptions:
        """Read and check ``metadata["training"]`` (optional, as are all its keys).

        Raises ``ValueError`` naming the first bad or unknown option.
        """
        raw = metadata.get("training")
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ValueError("training must be an object")
        if unknown := sorted(set(raw) - set(cls.__dataclass_fields__)):
            raise ValueError(f"training: unknown option(s): {', '.join(map(str, unknown))}")
        options: dict[str, Any] = {}
        if "epochs" in raw:
            options["epochs"] = float(_number(raw, "epochs", 0.0, MAX_EPOCHS, open_low=True))
        if "learning_rate" in raw:
            options["learning_rate"] = float(_number(raw, "learning_rate", 0.0, 1.0, open_low=True))
        if "batch_size" in raw:
            options["batch_size"] = _integer(raw, "batch_size", 1, 1024)
        if "max_steps" in raw:
            options["max_steps"] = _integer(raw, "max_steps", 1, MAX_STEPS)
        if "trials" in raw:
            options["trials"] = _integer(raw, "trials", 1, MAX_TRIALS)
        if "seed" in raw:
            # NumPy, which the trainer seeds too, takes 32-bit unsigned seeds.
            options["seed"] = _integer(raw, "seed", 0, 2**32 - 1)
        return cls(**options)


def _number(raw: dict[str, Any], name: str, low: float, high: float, *, open_low: bool) -> float:
    value = raw[name]
    # bool is an int subclass; `"epochs": true` is a mistake, not 1 epoch.
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"training.{name} must be a number, got {value!r}")
    if value < low or (open_low and value == low) or value > high:
        bound = ">" if open_low else ">="
        raise ValueError(f"training.{name} must be {bound} {low} and <= {high}, got {value!r}")
    return value


def _integer(raw: dict[str, Any], name: str, low: int, high: int) -> int:
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"training.{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"training.{name} must be between {low} and {high}, got {value!r}")
    return value


@dataclass(frozen=True)
class TrialParams:
    """The settings of one trial."""

    trial: int
    learning_rate: float
    epochs: float
    max_steps: int | None

    @classmethod
    def plan(cls, options: TrainingOptions) -> list[TrialParams]:
        """The first ``options.trials`` points of :data:`TRIAL_GRID` around ``options``."""
        return [
            cls(
                trial=index,
                learning_rate=min(options.learning_rate * lr_factor, 1.0),
                epochs=options.epochs * length_factor,
                max_steps=(
                    None
                    if options.max_steps is None
                    else max(1, round(options.max_steps * length_factor))
                ),
            )
            for index, (lr_factor, length_factor) in enumerate(TRIAL_GRID[: options.trials])
        ]


@dataclass
class TrialOutcome:
    """A finished trial, as recorded in the run state."""

    params: TrialParams
    after: dict[str, float]
    steps: int
    train_runtime_s: float
    loss_curve: list[dict[str, float | int]]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TrialOutcome:
        return cls(**{**raw, "params": TrialParams(**raw["params"])})


@dataclass
class RunState:
    """What survives a worker crash: the fingerprint of the run and its finished trials."""

    fingerprint: str
    before: dict[str, float] | None = None
    outcomes: dict[int, TrialOutcome] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path, fingerprint: str) -> RunState:
        """The state under ``root`` if it belongs to this run; else wipe ``root`` and start anew.

        A different fingerprint (other data, options or base model) makes the checkpoints
        useless, and so does a state file that cannot be read.
        """
        try:
            raw = json.loads((root / _STATE_FILE).read_text())
            if raw["fingerprint"] == fingerprint:
                outcomes = (TrialOutcome.from_json(o) for o in raw["outcomes"])
                return cls(fingerprint, raw["before"], {o.params.trial: o for o in outcomes})
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable %s, starting over", root / _STATE_FILE)
        shutil.rmtree(root, ignore_errors=True)
        return cls(fingerprint)

    def save(self, root: Path) -> None:
        """Write the state atomically (a crash leaves the old or the new file)."""
        root.mkdir(parents=True, exist_ok=True)
        raw = {
            "fingerprint": self.fingerprint,
            "before": self.before,
            "outcomes": [o.to_json() for o in self.outcomes.values()],
        }
        tmp = root / f"{_STATE_FILE}.tmp"
        tmp.write_text(json.dumps(raw))
        tmp.replace(root / _STATE_FILE)


class _Progress:
    """Turns trainer steps of each trial into one 0→1 fraction over all trials.

    Steps are counted across trials; the plan's step counts are estimates until a trial's
    trainer starts and gives its exact ``max_steps``.
    """

    def __init__(self, report: TrainingReport, planned_steps: list[int]) -> None:
        self._report = report
        self._steps = planned_steps
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
    ) -> None:
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
        )


class _ReportCallback(TrainerCallback):
    """Publishes progress after every logged step and stops the trainer when asked to.

    ``should_stop`` is checked in ``on_step_end``: the trainer only looks at
    ``should_training_stop`` after a step, so checking in ``on_step_begin`` would not stop
    any sooner. Stopping also saves a checkpoint, so a worker shut down mid-trial resumes
    from exactly there.
    """

    def __init__(self, report: TrainingReport, progress: _Progress, trial: int) -> None:
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
                self._trial, state.global_step, state.epoch, logs["loss"], logs.get("learning_rate")
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


class _Trainer(SentenceTransformerTrainer):
    """The library's trainer without its model-card callback.

    That callback copies training examples into the saved model's README (customer data
    would leave with every model) and draws a progress bar while picking them.
    """

    def add_model_card_callback(self, default_args_dict: dict[str, Any]) -> None:
        """Add nothing (see the class docstring)."""


class SentenceTransformersPlugin(FineTuningPlugin):
    """Fine-tunes any model Sentence-Transformers can load (see the module docstring)."""

    def validate_model(self, path: Path) -> None:
        """Load the model at ``path`` once on CPU; raises :class:`InvalidModel` if that fails."""
        with _no_progress_bars():
            model = _load_model(path, device="cpu")
        del model
        _release_memory()

    def validate_training_options(self, metadata: dict[str, Any]) -> None:
        """Check ``metadata["training"]``; raises ``ValueError`` naming the bad option."""
        TrainingOptions.from_metadata(metadata)

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
        evaluation examples) or ``out_of_memory``.
        """
        options = TrainingOptions.from_metadata(task.metadata)
        try:
            with _no_progress_bars():
                return _Run(task, options, batch, base_model, report).execute()
        except (torch.OutOfMemoryError, MemoryError) as exc:
            raise PluginError("out_of_memory", f"out of memory while training: {exc}") from exc
        except RuntimeError as exc:
            # The CPU allocator reports exhaustion as a plain RuntimeError.
            if "out of memory" in str(exc) or "can't allocate memory" in str(exc):
                raise PluginError("out_of_memory", f"out of memory while training: {exc}") from exc
            raise
        finally:
            _release_memory()


class _Run:
    """One call of :meth:`SentenceTransformersPlugin.train`."""

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
        self.split = split_examples(examples)
        if not self.split.train:
            raise PluginError(
                "empty_train_split",
                f"all {len(examples)} example(s) are held out for evaluation; "
                "the batch needs more examples to train on",
            )
        self.train_dataset = _to_datasets(self.split.train)
        self.plan = TrialParams.plan(options)
        fingerprint = _fingerprint(batch.path, options, base_model.id)
        self.state = RunState.load(self.root, fingerprint)

    def execute(self) -> TrainingResult:
        steps_per_epoch = sum(
            math.ceil(len(ds) / self.options.batch_size) for ds in self.train_dataset.values()
        )
        progress = _Progress(
            self.report,
            [p.max_steps or max(1, math.ceil(p.epochs * steps_per_epoch)) for p in self.plan],
        )
        for outcome in self.state.outcomes.values():
            progress.set_trial_steps(outcome.params.trial, outcome.steps)
        started = time.perf_counter()
        for params in self.plan:
            if params.trial in self.state.outcomes:
                logger.info("trial %d already finished, skipped", params.trial)
                continue
            if self.report.should_stop():
                raise TrainingStopped()
            self.state.outcomes[params.trial] = self._run_trial(params, progress)
            self._keep_best_final()
            self.state.save(self.root)
        logger.info("trials took %.1f s", time.perf_counter() - started)
        return self._finish()

    def _run_trial(self, params: TrialParams, progress: _Progress) -> TrialOutcome:
        """Train one trial, resuming from its latest checkpoint if there is one."""
        output_dir = self.root / f"trial-{params.trial}"
        model = _load_model(self.base_model.path)
        trainer: _Trainer | None = None
        try:
            if self.state.before is None:
                self.state.before = retrieval_metrics(model, self.split.eval)
                self.state.save(self.root)
            callback = _ReportCallback(self.report, progress, params.trial)
            trainer = _Trainer(
                model=model,
                args=_training_arguments(self.options, params, output_dir),
                train_dataset=self.train_dataset,
                loss=MultipleNegativesRankingLoss(model),
                callbacks=[callback],
            )
            # disable_tqdm swaps the progress bar for a callback that prints every log line.
            trainer.remove_callback(PrinterCallback)
            checkpoint = last_complete_checkpoint(output_dir)
            if checkpoint is not None:
                logger.info("trial %d resumes from %s", params.trial, checkpoint)
            output = trainer.train(resume_from_checkpoint=checkpoint)
            if callback.stopped:
                raise TrainingStopped()
            after = retrieval_metrics(model, self.split.eval)
            model.save(str(output_dir / _FINAL_DIR))
            loss_curve: list[dict[str, float | int]] = [
                {"step": entry["step"], "loss": entry["loss"], "trial": params.trial}
                for entry in trainer.state.log_history
                if "loss" in entry
            ]
            return TrialOutcome(
                params=params,
                after=after,
                steps=trainer.state.global_step,
                train_runtime_s=float(output.metrics["train_runtime"]),
                loss_curve=loss_curve,
            )
        finally:
            # Dropped here, not by the caller: an exception's traceback keeps this frame alive.
            del model, trainer
            _release_memory()

    def _best(self) -> TrialOutcome:
        # Ties go to the earlier trial, i.e. closer to the requested settings.
        return max(
            self.state.outcomes.values(),
            key=lambda o: (o.after["mrr@10"], -o.params.trial),
        )

    def _keep_best_final(self) -> None:
        """Delete the saved models of the trials that are not (or no longer) the best."""
        best = self._best().params.trial
        for trial in self.state.outcomes:
            if trial != best:
                shutil.rmtree(self.root / f"trial-{trial}" / _FINAL_DIR, ignore_errors=True)

    def _finish(self) -> TrainingResult:
        best = self._best()
        best_dir = self.report.work_dir / "best"
        shutil.rmtree(best_dir, ignore_errors=True)
        shutil.move(self.root / f"trial-{best.params.trial}" / _FINAL_DIR, best_dir)
        before = self.state.before
        assert before is not None  # set by the first trial
        outcomes = [self.state.outcomes[p.trial] for p in self.plan]
        metrics: dict[str, Any] = {
            "before": before,
            "after": best.after,
            "improved": best.after["mrr@10"] > before["mrr@10"],
            "loss_curve": [point for o in outcomes for point in o.loss_curve],
            "trials": [
                {"params": asdict(o.params), "after": o.after, "steps": o.steps} for o in outcomes
            ],
            "best_trial": best.params.trial,
            "train_examples": len(self.split.train),
            "eval_examples": len(self.split.eval),
            "train_runtime_s": sum(o.train_runtime_s for o in outcomes),
        }
        tracking_uri = get_settings().mlflow_tracking_uri
        if tracking_uri:
            _log_to_mlflow(tracking_uri, self.task, self.options, metrics, best_dir)
        shutil.rmtree(self.root, ignore_errors=True)
        self.report.progress(1.0)
        return TrainingResult(model_dir=best_dir, metrics=metrics)


def _training_arguments(
    options: TrainingOptions, params: TrialParams, output_dir: Path
) -> SentenceTransformerTrainingArguments:
    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=params.epochs,
        max_steps=params.max_steps or -1,
        per_device_train_batch_size=options.batch_size,
        learning_rate=params.learning_rate,
        warmup_steps=0.1,  # a ratio of the steps in Transformers 5
        seed=options.seed,
        data_seed=options.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
        eval_strategy="no",
        save_strategy="steps",
        save_steps=get_settings().checkpoint_every,
        save_total_limit=2,  # the latest, and the one before should the latest be torn
        logging_strategy="steps",
        logging_steps=1,  # a loss for every step, for the progress and the loss curve
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def _to_datasets(examples: list[Example]) -> dict[str, Dataset]:
    """The pairs and the triplets as two datasets (see the module docstring)."""
    pairs = [ex for ex in examples if ex.negative is None]
    triplets = [ex for ex in examples if ex.negative is not None]
    datasets: dict[str, Dataset] = {}
    if pairs:
        datasets["pairs"] = Dataset.from_dict(
            {
                "anchor": [ex.query for ex in pairs],
                "positive": [ex.positive for ex in pairs],
            }
        )
    if triplets:
        datasets["triplets"] = Dataset.from_dict(
            {
                "anchor": [ex.query for ex in triplets],
                "positive": [ex.positive for ex in triplets],
                "negative": [ex.negative for ex in triplets],
            }
        )
    return datasets


def _fingerprint(batch_path: Path, options: TrainingOptions, base_model_id: str) -> str:
    """Identifies a run: checkpoints of another batch, options or base model are not reused."""
    digest = hashlib.sha256()
    with batch_path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    # The model's id, not its path: a restarted worker may find the model elsewhere.
    digest.update(json.dumps([asdict(options), base_model_id]).encode())
    return digest.hexdigest()


def _load_model(path: Path, device: str | None = None) -> SentenceTransformer:
    """Load a local model (on the best device unless ``device``); raises :class:`InvalidModel`."""
    if not path.is_dir():
        raise InvalidModel(f"model directory {path} does not exist")
    try:
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    except (torch.OutOfMemoryError, MemoryError):
        raise
    except Exception as exc:
        raise InvalidModel(f"cannot load the model: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Silence the loading and saving progress bars of Transformers and the Hub meanwhile."""
    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def _release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _log_to_mlflow(
    tracking_uri: str,
    task: TaskSpec,
    options: TrainingOptions,
    metrics: dict[str, Any],
    model_dir: Path,
) -> None:
    """Log the run (one nested run per trial) and the best model to MLflow.

    A tracking failure is logged and swallowed: the model is trained and saved, and losing
    it for want of a tracking server would be worse than a missing run.
    """
    import mlflow
    from mlflow.entities import Metric

    def names(prefix: str, values: dict[str, float]) -> dict[str, float]:
        # MLflow metric names do not allow "@".
        return {f"{prefix}{name.replace('@', '_at_')}": value for name, value in values.items()}

    try:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment("embedtune")
        client = mlflow.MlflowClient()
        with mlflow.start_run(run_name=f"task-{task.id}"):
            mlflow.log_params({**asdict(options), "best_trial": metrics["best_trial"]})
            mlflow.log_metrics(
                {
                    **names("before_", metrics["before"]),
                    **names("after_", metrics["after"]),
                }
            )
            for trial in metrics["trials"]:
                number = trial["params"]["trial"]
                with mlflow.start_run(run_name=f"trial-{number}", nested=True) as run:
                    mlflow.log_params(trial["params"])
                    mlflow.log_metrics(names("after_", trial["after"]))
                    now = int(time.time() * 1000)
                    curve = [
                        Metric("loss", point["loss"], now, int(point["step"]))
                        for point in metrics["loss_curve"]
                        if point["trial"] == number
                    ]
                    # One request per 1,000 points, the most a batch may hold.
                    for start in range(0, len(curve), 1000):
                        client.log_batch(run.info.run_id, metrics=curve[start : start + 1000])
            mlflow.log_artifacts(str(model_dir), artifact_path="model")
    except Exception:
        logger.exception("logging to MLflow at %s failed", tracking_uri)


def last_complete_checkpoint(output_dir: Path) -> str | None:
    """The newest checkpoint that was written to the end, if any.

    A worker killed while saving leaves a checkpoint without its trainer state (written
    last); resuming from it would fail, so it is skipped.
    """
    candidates = sorted(
        (path for path in output_dir.glob("checkpoint-*") if path.name.split("-")[-1].isdigit()),
        key=lambda path: int(path.name.split("-")[-1]),
        reverse=True,
    )
    for candidate in candidates:
        try:
            json.loads((candidate / "trainer_state.json").read_text())
        except (OSError, ValueError):
            logger.warning("skipping incomplete checkpoint %s", candidate)
            continue
        return str(candidate)
    return None
