"""The training recipe: options resolved against the data, the loss and the trainer's arguments.

Defaults that depend on the data (:func:`resolve`), chosen for query → document retrieval
in general and measured by ``benchmarks/quality.py``: a larger batch gives each query more
in-batch negatives for about the same compute per epoch, once batches group texts of
similar length (padding follows the longest text of a batch); the learning rate grows with
the square root of the batch (never below the reference 5e-5).

Epochs follow a compute budget: the time of one epoch in random batches of the reference
size 32 (what a plain one-epoch run spends), counted in padded tokens. Length-grouped
batches spend far fewer tokens per epoch on texts of mixed length (each at a measured
``GROUPED_TOKEN_COST``), so such data gets more than one epoch for the same time; data of
uniform length keeps one. Where the hardware computes bf16 natively, training runs in bf16
mixed precision and a token costs ``BF16_TOKEN_COST`` of its fp32 time. Small data gets up
to two epochs so that training still takes enough steps.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainingArguments
from sentence_transformers.base.sampler import BatchSamplers, MultiDatasetBatchSamplers
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    GISTEmbedLoss,
    MatryoshkaLoss,
    MultipleNegativesRankingLoss,
)
from torch import nn

from embedtune.training.data import Example
from embedtune.training.evaluation import EVALUATOR_NAME
from embedtune.training.options import TrainingOptions
from embedtune.training.sentence_transformers.sampling import WINDOW, LengthGroupedBatchSampler

#: The reference recipe: batch 32 at lr 5e-5 (the library's examples).
BASE_BATCH_SIZE = 32
BASE_LEARNING_RATE = 5e-5
#: The largest automatic batch, and the smallest share of the pairs it may take. On real
#: text (benchmarks/quality.py), two epochs at batch 64 beat two at 128: more updates for
#: the same compute outweigh the extra in-batch negatives.
MAX_AUTO_BATCH_SIZE = 64
MIN_BATCHES_PER_EPOCH = 8
#: Automatic epochs: a second epoch only when one epoch is shorter than this many steps.
#: At 60, a few thousand pairs at batch 128 (about 30 steps) trained twice, twice the
#: compute of the one-epoch script it must not be slower than.
TARGET_STEPS = 24
MAX_AUTO_EPOCHS = 2.0
#: The share of the reference epoch's time that automatic epochs may spend. All of it: the
#: held-out evaluations and the checkpoints are counted in ``GROUPED_TOKEN_COST``.
COMPUTE_BUDGET = 1.0
#: Time per padded token of a length-grouped epoch against a random one, as measured
#: end to end (benchmarks/quality.py: two grouped epochs at batch 64 took 1.31 times the
#: one-epoch script, and 1.31 to 1.39 on samples of steps alone): shorter batches use the
#: cores less fully, and the held-out evaluations come on top.
GROUPED_TOKEN_COST = 1.35
#: Time per token of bf16 mixed precision against fp32, measured on a CPU with
#: AVX512-BF16 (0.60 to 0.65 a step of batch 64).
BF16_TOKEN_COST = 0.65
#: Automatic epochs are multiples of this.
EPOCH_STEP = 0.25
MAX_AUTO_SEQ_LENGTH = 256
#: Evaluations per trial when ``eval_steps`` is not given.
EVALUATIONS_PER_TRIAL = 4


@dataclass(frozen=True)
class Recipe:
    """The options with every automatic value chosen: what a run really uses."""

    loss: str
    batch_size: int
    learning_rate: float
    epochs: float
    max_steps: int | None
    warmup_ratio: float
    lr_scheduler: str
    weight_decay: float
    max_seq_length: int
    group_by_length: bool
    precision: str
    matryoshka_dims: list[int] | None
    mini_batch_size: int
    seed: int
    metric_for_best: str
    load_best_model_at_end: bool
    early_stopping_patience: int | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def auto_batch_size(num_pairs: int) -> int:
    """The largest power of two up to 64 that still gives 8 batches per epoch (min 8)."""
    size = MAX_AUTO_BATCH_SIZE
    while size > 8 and num_pairs < size * MIN_BATCHES_PER_EPOCH:
        size //= 2
    return size


def auto_learning_rate(batch_size: int) -> float:
    """5e-5 at batch 32 and below, scaled up with the square root of a larger batch."""
    return BASE_LEARNING_RATE * math.sqrt(max(batch_size, BASE_BATCH_SIZE) / BASE_BATCH_SIZE)


def padded_tokens(lengths: Sequence[Sequence[int]], batches: list[list[int]]) -> int:
    """Tokens that ``batches`` feed the model: each column padded to its longest text."""
    total = 0
    for batch in batches:
        columns = zip(*(lengths[row] for row in batch), strict=True)
        total += len(batch) * sum(max(column) for column in columns)
    return total


def random_batches(size: int, batch_size: int, seed: int) -> list[list[int]]:
    """The rows in random batches (a plain sampler's epoch)."""
    order = list(range(size))
    random.Random(seed).shuffle(order)
    return [order[start : start + batch_size] for start in range(0, size, batch_size)]


def grouped_batches(
    lengths: Sequence[Sequence[int]], batch_size: int, seed: int, window: int
) -> list[list[int]]:
    """The rows as the length-grouped sampler batches them: sorted within windows."""
    order = random_batches(len(lengths), batch_size * window, seed)
    batches: list[list[int]] = []
    for rows in order:
        rows = sorted(rows, key=lambda row: max(lengths[row]))
        batches.extend(
            rows[start : start + batch_size] for start in range(0, len(rows), batch_size)
        )
    return batches


def epoch_cost(
    lengths: Sequence[Sequence[int]], batch_size: int, grouped: bool, seed: int = 0
) -> int:
    """Padded tokens of one epoch of ``lengths`` (tokens per column of each example)."""
    if grouped:
        return padded_tokens(lengths, grouped_batches(lengths, batch_size, seed, WINDOW))
    return padded_tokens(lengths, random_batches(len(lengths), batch_size, seed))


def auto_epochs(
    lengths: Sequence[Sequence[int]],
    batch_size: int,
    grouped: bool = True,
    token_cost: float = 1.0,
) -> float:
    """As many epochs (in steps of 0.25, 1 to 2) as the compute budget pays for; two for
    small data whose epoch is under ``TARGET_STEPS`` steps. ``token_cost``: the time of a
    token in the run's precision, against fp32."""
    if not lengths:
        return 1.0
    steps_per_epoch = max(1, math.ceil(len(lengths) / batch_size))
    small = min(MAX_AUTO_EPOCHS, max(1.0, math.ceil(TARGET_STEPS / steps_per_epoch)))
    budget = COMPUTE_BUDGET * epoch_cost(lengths, BASE_BATCH_SIZE, grouped=False)
    per_token = token_cost * (GROUPED_TOKEN_COST if grouped else 1.0)
    affordable = budget / max(1.0, per_token * epoch_cost(lengths, batch_size, grouped))
    by_budget = math.floor(affordable / EPOCH_STEP) * EPOCH_STEP
    return min(MAX_AUTO_EPOCHS, max(1.0, small, by_budget))


def native_bf16() -> bool:
    """Whether this machine computes bf16 natively: a CUDA GPU that supports it, or (with
    no GPU) a CPU with AVX512-BF16 or AMX-BF16."""
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def resolve_precision(requested: str) -> str:
    if requested != "auto":
        return requested
    return "bf16" if native_bf16() else "fp32"


def resolve(
    options: TrainingOptions,
    train: list[Example],
    model_max_length: int,
    count_tokens: Callable[[list[str], int], list[int]],
) -> Recipe:
    """Fill in the automatic values of ``options`` for ``train`` and the model
    (``count_tokens(texts, limit)``: the model's tokens of each text, at most ``limit``)."""
    batch_size = options.batch_size or min(auto_batch_size(len(train)), max(len(train), 1))
    max_seq_length = options.max_seq_length or min(model_max_length, MAX_AUTO_SEQ_LENGTH)
    precision = resolve_precision(options.precision)
    epochs = options.epochs
    if epochs is None:
        columns = [
            count_tokens([ex.query for ex in train], max_seq_length),
            count_tokens([ex.positive for ex in train], max_seq_length),
        ]
        lengths = list(zip(*columns, strict=True))
        token_cost = BF16_TOKEN_COST if precision == "bf16" else 1.0
        epochs = auto_epochs(lengths, batch_size, options.group_by_length, token_cost)
    return Recipe(
        loss=options.loss,
        batch_size=batch_size,
        learning_rate=options.learning_rate or auto_learning_rate(batch_size),
        epochs=epochs,
        max_steps=options.max_steps,
        warmup_ratio=options.warmup_ratio,
        lr_scheduler=options.lr_scheduler,
        weight_decay=options.weight_decay,
        max_seq_length=max_seq_length,
        group_by_length=options.group_by_length,
        precision=precision,
        matryoshka_dims=options.matryoshka_dims,
        mini_batch_size=options.mini_batch_size,
        seed=options.seed,
        metric_for_best=options.metric_for_best,
        load_best_model_at_end=options.load_best_model_at_end,
        early_stopping_patience=options.early_stopping_patience,
    )


def token_counter(model: SentenceTransformer) -> Callable[[list[str], int], list[int]]:
    """Counts of ``model``'s tokens per text (special tokens included), at most ``limit``."""

    def count(texts: list[str], limit: int) -> list[int]:
        ids = model.tokenizer(texts, truncation=True, max_length=limit)["input_ids"]
        return [len(row) for row in ids]

    return count


def build_loss(
    recipe: Recipe, model: SentenceTransformer, guide: SentenceTransformer | None
) -> nn.Module:
    """The loss of ``recipe`` (``guide``: the frozen base model, for ``gist``)."""
    loss: nn.Module
    if recipe.loss == "cached_mnrl":
        loss = CachedMultipleNegativesRankingLoss(
            model, mini_batch_size=recipe.mini_batch_size, show_progress_bar=False
        )
    elif recipe.loss == "gist":
        assert guide is not None, "gist needs the base model as its guide"
        loss = GISTEmbedLoss(model, guide=guide)
    elif recipe.loss == "symmetric":
        # The library's replacement of MultipleNegativesSymmetricRankingLoss (deprecated).
        loss = MultipleNegativesRankingLoss(
            model, directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction"
        )
    else:
        loss = MultipleNegativesRankingLoss(model)
    if recipe.matryoshka_dims:
        loss = MatryoshkaLoss(model, loss, matryoshka_dims=recipe.matryoshka_dims)
    return loss


def to_datasets(examples: list[Example]) -> dict[str, Dataset]:
    """The pairs and the triplets as two datasets: a batch has uniform columns, and the
    trainer draws each batch from one of them in proportion to their sizes."""
    pairs = [ex for ex in examples if ex.negative is None]
    triplets = [ex for ex in examples if ex.negative is not None]
    datasets: dict[str, Dataset] = {}
    if pairs:
        datasets["pairs"] = Dataset.from_dict(
            {"anchor": [ex.query for ex in pairs], "positive": [ex.positive for ex in pairs]}
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


def planned_steps(datasets: dict[str, Dataset], batch_size: int, epochs: float) -> int:
    """Optimizer steps of a trial of ``epochs`` (before the trainer gives its exact count)."""
    per_epoch = sum(math.ceil(len(ds) / batch_size) for ds in datasets.values())
    return max(1, math.ceil(epochs * per_epoch))


def eval_interval(requested: int | None, total_steps: int, checkpoint_every: int) -> int:
    """Steps between evaluations (each also saves a checkpoint, at least every
    ``checkpoint_every`` steps)."""
    steps = requested or max(1, math.ceil(total_steps / EVALUATIONS_PER_TRIAL))
    return max(1, min(steps, checkpoint_every))


def training_arguments(
    recipe: Recipe,
    *,
    output_dir: Path,
    learning_rate: float,
    epochs: float,
    max_steps: int | None,
    eval_steps: int,
    report_to: list[str],
    run_name: str,
) -> SentenceTransformerTrainingArguments:
    """The trainer's arguments of one trial."""
    return SentenceTransformerTrainingArguments(
        output_dir=str(output_dir),
        run_name=run_name,
        num_train_epochs=epochs,
        max_steps=max_steps or -1,
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=recipe.batch_size,
        learning_rate=learning_rate,
        warmup_steps=recipe.warmup_ratio,  # below 1: a ratio of the steps (Transformers 5)
        lr_scheduler_type=recipe.lr_scheduler,
        weight_decay=recipe.weight_decay,
        seed=recipe.seed,
        data_seed=recipe.seed,
        batch_sampler=(
            LengthGroupedBatchSampler if recipe.group_by_length else BatchSamplers.NO_DUPLICATES
        ),
        multi_dataset_batch_sampler=MultiDatasetBatchSamplers.PROPORTIONAL,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        # The best and the last; the trainer never deletes the best while it is kept.
        save_total_limit=2,
        load_best_model_at_end=recipe.load_best_model_at_end,
        metric_for_best_model=f"eval_{EVALUATOR_NAME}_cosine_{recipe.metric_for_best}",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=1,  # a loss for every step, for the progress and the loss curve
        report_to=report_to,
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
        bf16=recipe.precision == "bf16",
        # Transformers asks for the CPU by name before it autocasts there in bf16.
        use_cpu=recipe.precision == "bf16" and not torch.cuda.is_available(),
    )
