"""``metadata["training"]`` of a task: every option of the sentence-transformers plugin.

One pydantic model validates the options when a task is created and documents them in the
OpenAPI schema of ``metadata``. It imports no ML library, so the API, the client and the CLI
can use it without loading torch. ``None`` means "chosen from the data" (see
:mod:`embedtune.training.sentence_transformers.recipe`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Loss = Literal["mnrl", "cached_mnrl", "gist", "symmetric"]
LrScheduler = Literal["linear", "cosine", "constant"]
BestMetric = Literal["mrr@10", "ndcg@10"]
Precision = Literal["auto", "fp32", "bf16"]

#: Trials walk this grid of (learning-rate factor, training-length factor), in this order.
TRIAL_GRID: tuple[tuple[float, float], ...] = tuple(
    (lr, length) for length in (1.0, 2.0, 0.5, 3.0) for lr in (1.0, 3.0, 1 / 3, 10.0, 0.1)
)
MAX_EPOCHS = 100
MAX_STEPS = 1_000_000
MAX_TRIALS = len(TRIAL_GRID)


class HardNegativeOptions(BaseModel):
    """Mine hard negatives from the batch's own documents with the base model."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    count: int = Field(default=1, ge=1, le=10, description="Negatives mined per pair.")
    range_min: int = Field(
        default=0, ge=0, le=1000, description="Skip this many of the most similar documents."
    )
    relative_margin: float = Field(
        default=0.05,
        ge=0.0,
        lt=1.0,
        description=(
            "False-negative guard: a mined document must score below "
            "(1 - relative_margin) x the positive's score."
        ),
    )
    sampling: Literal["top", "random"] = Field(
        default="top", description="Take the hardest candidates, or random ones in the range."
    )


class TrainingOptions(BaseModel):
    """Options of a fine-tuning run; ``null`` (the default) picks a value from the data."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    loss: Loss = Field(
        default="mnrl",
        description=(
            "mnrl: MultipleNegativesRankingLoss; cached_mnrl: its cached variant (large "
            "batches on small memory); gist: GISTEmbedLoss guided by the frozen base model; "
            "symmetric: MultipleNegativesRankingLoss in both directions (query to document and "
            "back), the replacement of MultipleNegativesSymmetricRankingLoss."
        ),
    )
    matryoshka_dims: list[int] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Wrap the loss in MatryoshkaLoss at these dimensions (largest first).",
    )
    mini_batch_size: int = Field(
        default=32, ge=1, le=1024, description="cached_mnrl: texts encoded at once."
    )
    hard_negatives: HardNegativeOptions | None = Field(
        default=None, description="Mine hard negatives (off by default)."
    )
    epochs: float | None = Field(
        default=None,
        gt=0,
        le=MAX_EPOCHS,
        description="Passes over the pairs; default: 1 to 2, as a compute budget allows.",
    )
    max_steps: int | None = Field(
        default=None, ge=1, le=MAX_STEPS, description="Overrides epochs when set."
    )
    batch_size: int | None = Field(
        default=None, ge=1, le=1024, description="Pairs per step; default: from the data, up to 64."
    )
    learning_rate: float | None = Field(
        default=None, gt=0, le=1, description="Peak learning rate; default: from the batch size."
    )
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    lr_scheduler: LrScheduler = "linear"
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    max_seq_length: int | None = Field(
        default=None,
        ge=8,
        le=8192,
        description="Tokens per text; default: the model's, at most 256.",
    )
    group_by_length: bool = Field(
        default=True,
        description="Batch texts of similar length together (less padding, same data).",
    )
    precision: Precision = Field(
        default="auto",
        description=(
            "Arithmetic of the training steps. bf16: mixed precision (the weights stay fp32); "
            "auto: bf16 where the worker's hardware computes it natively (a GPU that supports "
            "it, a CPU with AVX512-BF16 or AMX), fp32 elsewhere."
        ),
    )
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    trials: int = Field(
        default=1,
        ge=1,
        le=MAX_TRIALS,
        description="Train this many points of a grid around the settings; keep the best.",
    )
    eval_steps: int | None = Field(
        default=None, ge=1, le=MAX_STEPS, description="Held-out evaluation interval in steps."
    )
    metric_for_best: BestMetric = Field(
        default="mrr@10", description="Held-out metric that picks the best checkpoint."
    )
    load_best_model_at_end: bool = True
    early_stopping_patience: int | None = Field(
        default=None, ge=1, le=1000, description="Stop after this many evaluations without gain."
    )
    validation_batch_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Evaluate on this batch; then nothing is held out of the training batch.",
    )

    @field_validator("matryoshka_dims")
    @classmethod
    def _dims_descending(cls, dims: list[int] | None) -> list[int] | None:
        if dims is not None and (
            any(not 1 <= d <= 8192 for d in dims) or dims != sorted(set(dims), reverse=True)
        ):
            raise ValueError("must be distinct dimensions from 1 to 8192, largest first")
        return dims

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> TrainingOptions:
        """Read ``metadata["training"]`` (optional); raises ``ValueError`` naming the option."""
        raw = metadata.get("training")
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValueError("training must be an object")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ValueError(describe_errors("training", exc)) from exc


def describe_errors(prefix: str, exc: ValidationError) -> str:
    """One line per problem, each naming its option: ``training.epochs: …``."""
    problems = []
    for error in exc.errors():
        where = ".".join([prefix, *map(str, error["loc"])])
        message = "unknown option" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{where}: {message}, got {error['input']!r}")
    return "; ".join(problems)


def misplaced_option(metadata: dict[str, Any], names: set[str], section: str) -> str | None:
    """A hint for the first top-level key of ``metadata`` that belongs in ``section``."""
    for key in metadata:
        if key in names:
            value = {section: {key: metadata[key]}}
            return (
                f"metadata.{key} is a {section} option and would be ignored at the top level: "
                f"put it in metadata.{section}, e.g. {{'metadata': {value!r}}}"
            )
    return None


TRAINING_OPTION_NAMES = set(TrainingOptions.model_fields)
