"""The queue's figures: dispatch latency on Redis and RabbitMQ, idle load, cancel latency,
and a soak with kills.

1. Dispatch latency: tasks created one at a time; create → ``processing`` (the task's
   ``started_at`` - ``created_at``, both written by the database's clients on this machine),
   for a worker that just finished the previous task (each task created the moment the
   previous one is seen completed) and for one idle for ``--idle-gap`` seconds. Baseline from
   the same run: a bare Redis round trip (LPUSH → BRPOP). The same on RabbitMQ.
2. Idle load: CPU of one idle ``embedtune worker`` (its supervisor and worker process) and
   the Redis server's commands per second meanwhile. The Redis server is a private one
   started for the run (unless ``--redis-url``), so the count is this run's alone. The same
   while the worker runs a training that only sleeps (a waiting consumer must not spin).
3. Cancel latency: a task trains (the scripted plugin, 50 ms steps); the cancel response's
   time → the time the plugin stopped, as the plugin itself records it on the worker.
4. Soak: short tasks through ``--processes`` worker processes while a random one is killed
   with SIGKILL every ``--kill-every`` seconds. Prints tasks lost (not finished when the
   queue drained, or never stored), tasks trained twice (more than one model registered:
   a killed worker's interrupted training is expected to start again, but only one run may
   complete), tasks failed cleanly, and the time to drain.

Trainings are the test plugin ``scripted`` (tests/plugin_fixtures), not real models: the
figures are the queue's own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import TextClause, bindparam, create_engine, text

from _brokers import Load, delete_rabbitmq_queue, redis_round_trip, redis_server, worker_load
from _common import Latency, uvicorn_server

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_FIXTURES = ROOT / "tests" / "plugin_fixtures"
EMBEDTUNE = Path(sys.executable).with_name("embedtune")
QUEUE_NAME = f"fine-tuning-bench-{os.getpid()}"
FINISHED = ("completed", "failed", "canceled")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="", help="default: a private redis-server")
    parser.add_argument("--rabbitmq-url", default="amqp://guest:guest@127.0.0.1:5672")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    parser.add_argument("--dispatch-samples", type=int, default=100)
    parser.add_argument("--idle-samples", type=int, default=30)
    parser.add_argument("--idle-gap", type=float, default=2.0, help="seconds between tasks")
    parser.add_argument("--idle-seconds", type=float, default=15.0, help="idle load window")
    parser.add_argument("--cancel-samples", type=int, default=30)
    parser.add_argument("--soak-tasks", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds between kills")
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    return parser.parse_args()


class Bench:
    def __init__(self, client: httpx.Client, work: Path, database_url: str) -> None:
        self.client = client
        self.artifacts = work / "artifacts"
        self.engine = create_engine(database_url)
        model_dir = work / "scripted-base"
        model_dir.mkdir(exist_ok=True)
        (model_dir / "model.txt").write_text("base\n")
        model = {"id": "bench", "name": "bench", "path": str(model_dir), "plugin": "scripted"}
        registered = self.client.post("/models", json=model)
        if registered.status_code != 409:  # 409: registered by an earlier server of this run
            registered.raise_for_status()
        examples = [{"query": f"q{i}", "positive": f"p{i}"} for i in range(4)]
        self.batch_id = self._post("/batches", {"name": "bench", "examples": examples})["id"]

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def create(self, steps: int, step_seconds: float) -> str:
        script = {"steps": steps, "step_seconds": step_seconds}
        body = {"embedding_model_id": "bench", "batch_id": self.batch_id}
        task = self._post("/fine-tuning/task", {**body, "metadata": {"script": script}})
        return str(task["id"])

    def status(self, task_id: str) -> str:
        return str(self.client.get(f"/fine-tuning/task/{task_id}").json()["status"])

    def wait(self, task_id: str, statuses: tuple[str, ...] = FINISHED) -> None:
        while self.status(task_id) not in statuses:
            time.sleep(0.01)

    def log(self, name: str) -> list[dict[str, Any]]:
        path = self.artifacts.resolve() / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def wait_log(self, name: str, task_id: str) -> dict[str, Any]:
        while True:
            for entry in self.log(name):
                if entry["task_id"] == task_id:
                    return entry
            time.sleep(0.01)

    def dispatch_latency(self, samples: int, gap: float = 0.0) -> Latency:
        """Tasks created one at a time, each ``gap`` seconds after the previous finished."""
        ids = []
        for _ in range(samples):
            time.sleep(gap)
            ids.append(self.create(steps=1, step_seconds=0.0))
            self.wait(ids[-1])
        with self.engine.connect() as connection:
            rows = connection.execute(
                _by_ids("SELECT created_at, started_at FROM fine_tuning_task WHERE id IN :ids"),
                {"ids": ids},
            ).all()
        return Latency.of([_seconds(started) - _seconds(created) for created, started in rows])

    def busy_load(self, supervisor_pid: int, redis_url: str, seconds: float) -> Load:
        """The worker's load while a training sleeps in 50 ms steps (then canceled)."""
        task_id = self.create(steps=int(seconds / 0.05) + 100, step_seconds=0.05)
        self.wait(task_id, ("processing",))
        load = worker_load(supervisor_pid, redis_url, seconds)
        self.client.put(f"/fine-tuning/task/{task_id}/cancel").raise_for_status()
        self.wait(task_id)
        return load

    def cancel_latency(self, samples: int) -> Latency:
        seconds = []
        for _ in range(samples):
            task_id = self.create(steps=10_000, step_seconds=0.05)
            self.wait_log("trainings.log", task_id)
            self.client.put(f"/fine-tuning/task/{task_id}/cancel").raise_for_status()
            answered = time.time()
            seconds.append(self.wait_log("stops.log", task_id)["at"] - answered)
        return Latency.of(seconds)

    def unfinished(self) -> int:
        response = self.client.get(
            "/fine-tuning/task", params={"status": ["pending", "processing"], "limit": 1}
        )
        return int(response.headers["x-total-count"])

    def soak_outcome(self, ids: list[str]) -> dict[str, int]:
        with self.engine.connect() as connection:
            statuses = dict(
                connection.execute(
                    _by_ids("SELECT id, status FROM fine_tuning_task WHERE id IN :ids"),
                    {"ids": ids},
                ).all()
            )
            models = dict(
                connection.execute(
                    _by_ids(
                        "SELECT task_id, count(*) FROM embedding_model"
                        " WHERE task_id IN :ids GROUP BY task_id"
                    ),
                    {"ids": ids},
                ).all()
            )
            recoveries = connection.execute(
                _by_ids(
                    "SELECT count(*) FROM fine_tuning_task_event"
                    " WHERE kind = 'heartbeat_lost' AND task_id IN :ids"
                ),
                {"ids": ids},
            ).scalar_one()
        starts = sum(1 for entry in self.log("trainings.log") if entry["task_id"] in statuses)
        return {
            "lost": sum(1 for i in ids if statuses.get(i) not in FINISHED),
            "trained_twice": sum(1 for n in models.values() if n > 1),
            "completed_without_model": sum(
                1 for i in ids if statuses.get(i) == "completed" and models.get(i, 0) != 1
            ),
            "completed": sum(1 for s in statuses.values() if s == "completed"),
            "failed": sum(1 for s in statuses.values() if s == "failed"),
            "recoveries": int(recoveries),
            "training_starts": starts,
        }


def _by_ids(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("ids", expanding=True))


def _seconds(moment: Any) -> float:
    # SQLite hands back ISO strings to a raw text() query; PostgreSQL, datetimes.
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return float(moment.timestamp())


@contextmanager
def workers(processes: int, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(EMBEDTUNE), "worker", "--processes", str(processes)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            while log.read_text(errors="replace").count("worker process ready") < processes:
                if process.poll() is not None:
                    raise RuntimeError(f"worker exited:\n{log.read_text()[-4000:]}")
                time.sleep(0.2)
            yield process
        except BaseException:
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                process.kill()


def _training_pids(bench: Bench, supervisor: int) -> list[int]:
    """Worker processes of ``supervisor`` that hold a processing task right now."""
    children = {
        int(p) for p in Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    }
    with bench.engine.connect() as connection:
        holders = connection.execute(
            text("SELECT worker_id FROM fine_tuning_task WHERE status = 'processing'")
        ).scalars()
        pids = {int(worker.split(":")[1]) for worker in holders if worker}
    return sorted(children & pids)


def soak(bench: Bench, supervisor: int, args: argparse.Namespace) -> None:
    stop = threading.Event()
    kills = 0

    def killer() -> None:
        nonlocal kills
        while not stop.wait(args.kill_every):
            # Kill mid-training: a process still booting holds no task worth testing.
            victims = _training_pids(bench, supervisor)
            if victims:
                os.kill(random.choice(victims), signal.SIGKILL)
                kills += 1

    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: bench.create(4, 0.05), range(args.soak_tasks)))
    created = time.perf_counter() - start
    thread = threading.Thread(target=killer)
    thread.start()
    deadline = time.monotonic() + args.drain_timeout
    while bench.unfinished() and time.monotonic() < deadline:
        time.sleep(0.5)
    stop.set()
    thread.join()
    drained = time.perf_counter() - start
    outcome = bench.soak_outcome(ids)
    print(
        f"soak: {args.soak_tasks} tasks of 0.2 s, {args.processes} worker processes,"
        f" {kills} SIGKILLs mid-training"
        f" (created in {created:.1f} s)"
    )
    print(f"  tasks lost          {outcome['lost']}   (must be 0)")
    print(f"  tasks trained twice {outcome['trained_twice']}   (must be 0)")
    print(f"  completed without exactly one model {outcome['completed_without_model']}")
    print(
        f"  completed {outcome['completed']}, failed cleanly {outcome['failed']},"
        f" recovered by a reaper {outcome['recoveries']},"
        f" training starts {outcome['training_starts']}"
    )
    print(f"  time to drain       {drained:.1f} s")


def worker_env(
    work: Path, database_url: str, broker_url: str, fast_recovery: bool = False
) -> dict[str, str]:
    """The servers' and workers' environment: default liveness settings, or, for the cancel
    and soak figures, heartbeats and reaper passes fast enough to recover within seconds."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(PLUGIN_FIXTURES), os.environ.get("PYTHONPATH")])
        ),
        "EMBEDTUNE_DATABASE_URL": database_url,
        "EMBEDTUNE_ARTIFACTS_DIR": str(work / "artifacts"),
        # The scripted base model lives in the work directory, outside the artifact store.
        "EMBEDTUNE_MODEL_ROOTS": str(work),
        "EMBEDTUNE_BROKER_URL": broker_url,
        "EMBEDTUNE_QUEUE_NAME": QUEUE_NAME,
        # INFO: the workers announce "worker process ready" at that level.
        "EMBEDTUNE_LOG_LEVEL": "INFO",
        "EMBEDTUNE_AUTH": "disabled",
    }
    if fast_recovery:
        env |= {
            "EMBEDTUNE_HEARTBEAT_INTERVAL": "0.5",
            "EMBEDTUNE_HEARTBEAT_TIMEOUT": "3",
            "EMBEDTUNE_REAPER_INTERVAL": "1",
            # Several kills may hit one task; it must still end completed or cleanly failed.
            "EMBEDTUNE_MAX_ATTEMPTS": "10",
        }
    return env


def dispatch_figures(bench: Bench, args: argparse.Namespace, broker: str) -> None:
    finished = bench.dispatch_latency(args.dispatch_samples)
    idle = bench.dispatch_latency(args.idle_samples, gap=args.idle_gap)
    print(f"{broker} dispatch latency, create → processing:")
    print(f"  worker that just finished a task ({args.dispatch_samples}): {finished}")
    print(f"  worker idle for {args.idle_gap:g} s ({args.idle_samples}):        {idle}")


def rabbitmq_figures(work: Path, database_url: str, args: argparse.Namespace) -> None:
    env = worker_env(work, database_url, args.rabbitmq_url)
    try:
        with (
            uvicorn_server("embedtune.app:create_app", env, "/health") as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            bench = Bench(client, work, database_url)
            with workers(1, env, work / "worker-rabbitmq.log"):
                dispatch_figures(bench, args, "RabbitMQ")
    finally:
        delete_rabbitmq_queue(args.rabbitmq_url, QUEUE_NAME)


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(args.redis_url) as redis_url:
        work = Path(tmp)
        database_url = args.database_url or f"sqlite:///{work / 'embedtune.db'}"
        print(f"Redis round trip (baseline): {redis_round_trip(redis_url, 200)}")
        env = worker_env(work, database_url, redis_url)
        with (
            uvicorn_server("embedtune.app:create_app", env, "/health") as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            bench = Bench(client, work, database_url)
            with workers(1, env, work / "worker-1.log") as supervisor:
                time.sleep(2)  # past the worker's start
                load = worker_load(supervisor.pid, redis_url, args.idle_seconds)
                print(f"idle load over {args.idle_seconds:g} s, one worker process: {load}")
                busy = bench.busy_load(supervisor.pid, redis_url, args.idle_seconds)
                print(f"load while it trains (a training that sleeps):     {busy}")
                dispatch_figures(bench, args, "Redis")
        if args.rabbitmq_url:
            rabbitmq_figures(work, database_url, args)
        env = worker_env(work, database_url, redis_url, fast_recovery=True)
        with (
            uvicorn_server("embedtune.app:create_app", env, "/health") as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            bench = Bench(client, work, database_url)
            with workers(1, env, work / "worker-cancel.log"):
                cancel = bench.cancel_latency(args.cancel_samples)
            print(f"cancel latency, response → training stopped ({args.cancel_samples}): {cancel}")
            if args.soak_tasks <= 0:
                return
            with workers(args.processes, env, work / "worker-soak.log") as supervisor:
                soak(bench, supervisor.pid, args)


if __name__ == "__main__":
    main()
