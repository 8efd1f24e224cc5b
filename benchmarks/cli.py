"""Benchmark: how long the ``embedtune`` command takes to answer (issue 15, item 1).

Wall time of ``embedtune --help`` and of ``embedtune task list --json`` against a live
server (SQLite, a few tasks), each a fresh process, against the baseline
``python -c "import httpx, typer, rich, pydantic, pydantic_settings"`` (the libraries the
command cannot do without), in alternating rounds of the same run. Figures are medians;
target: each ratio to the baseline <= 1.5.

    .venv/bin/python benchmarks/cli.py [--rounds 7]

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _common import uvicorn_server

BASELINE = [sys.executable, "-c", "import httpx, typer, rich, pydantic, pydantic_settings"]
ENTRY_POINT = str(Path(sys.executable).parent / "embedtune")


def _wall(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        server_env = {
            "EMBEDTUNE_DATABASE_URL": f"sqlite:///{home}/embedtune.db",
            "EMBEDTUNE_ARTIFACTS_DIR": f"{home}/artifacts",
            "HF_HUB_OFFLINE": "1",
        }
        with uvicorn_server("embedtune.app:create_app", server_env, "/health") as url:
            with httpx.Client(base_url=url) as http:
                examples = [{"query": f"q{i}", "positive": f"p{i}"} for i in range(8)]
                http.post("/batches", json={"examples": examples}).raise_for_status()
            env = {**os.environ, "EMBEDTUNE_URL": url}
            commands = {
                "baseline (import httpx, typer, rich, pydantic, pydantic_settings)": BASELINE,
                "embedtune --help": [ENTRY_POINT, "--help"],
                "embedtune task list --json": [ENTRY_POINT, "task", "list", "--json"],
            }
            samples: dict[str, list[float]] = {name: [] for name in commands}
            for command in commands.values():  # warm the file cache once
                _wall(command, env)
            for _ in range(options.rounds):
                for name, command in commands.items():
                    samples[name].append(_wall(command, env))
    medians = {name: statistics.median(times) for name, times in samples.items()}
    baseline = next(iter(medians.values()))
    print(f"CLI wall time, median of {options.rounds} fresh processes each")
    for name, median in medians.items():
        print(f"  {name:<68} {median * 1000:7.0f} ms  ratio {median / baseline:5.2f}")
    print("  target: ratio <= 1.5 for both commands")


if __name__ == "__main__":
    main()
