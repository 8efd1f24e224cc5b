"""What a starting server says: one block with the useful facts; Alembic only at DEBUG."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from embedtune.migrations import upgrade_database
from embedtune.startup import hide_password, quiet_alembic


def test_start_up_logs_one_block_with_dashboard_database_broker_worker_and_models(
    settings_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from embedtune.app import create_app

    caplog.set_level(logging.INFO)
    with TestClient(create_app()) as client:  # the first embedding loads the blue model
        assert client.post("/v1/embeddings", json={"input": "a"}).status_code == 200
        assert gc.get_freeze_count() > 0  # start-up's objects are left out of collections
    assert "Loading weights" not in capfd.readouterr().err  # no tqdm bar in the server's log
    [block] = [r.getMessage() for r in caplog.records if r.name == "embedtune.startup"]
    lines = block.splitlines()
    assert lines[0].startswith("embedtune ") and lines[0].endswith("is ready")
    text = "\n".join(lines)
    assert "dashboard      http://127.0.0.1:8000/" in text
    assert "API docs       http://127.0.0.1:8000/docs" in text
    assert f"database       {settings_env['EMBEDTUNE_DATABASE_URL']}" in text
    assert "broker         embedded (in this process)" in text
    assert "worker         running in this process (1 training thread)" in text
    assert "blue model     all-MiniLM-L6-v2" in text
    assert not [r for r in caplog.records if r.name.startswith("alembic")]


def test_alembic_lines_are_kept_at_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    quiet_alembic()
    caplog.set_level(logging.DEBUG)
    # Libraries imported by earlier tests (mlflow, optuna) raise these loggers' levels.
    for name in ("alembic", "alembic.runtime.migration"):
        caplog.set_level(logging.DEBUG, logger=name)
    upgrade_database(f"sqlite:///{tmp_path / 'fresh.db'}")
    alembic = [r for r in caplog.records if r.name.startswith("alembic")]
    assert any("Running upgrade" in r.getMessage() for r in alembic)
    assert {r.levelname for r in alembic} == {"DEBUG"}


def test_urls_in_the_start_up_block_hide_passwords() -> None:
    shown = hide_password("postgresql+psycopg://app:s3cret@db:5432/embedtune")
    assert "s3cret" not in shown and "app:***@db:5432" in shown
    assert "pw" not in hide_password("amqp://guest:pw@rabbit:5672/")
