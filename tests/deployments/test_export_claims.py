"""The export row: created once however many processes race, claimed by one of them, and
finished only by the one that holds it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from conftest import both_databases
from embedtune.core import artifacts
from embedtune.core.db import new_session, transaction, utcnow
from embedtune.deployments import repository
from embedtune.migrations import upgrade_database
from embedtune.models import service as models

MODEL = models.BUNDLED_MODEL_ID


@pytest.fixture
def database(settings_env: dict[str, str]) -> None:
    """A migrated database with the bundled model registered."""
    upgrade_database(settings_env["EMBEDTUNE_DATABASE_URL"])
    with new_session(writer=True) as session, transaction(session):
        models.register_bundled_model(session)


@both_databases
@pytest.mark.usefixtures("database")
def test_an_export_is_created_once_claimed_by_one_process_and_finished_by_it() -> None:
    stale_before = utcnow() - timedelta(minutes=10)

    with new_session(writer=True) as session:
        repository.insert_pending_export(session, MODEL, "not_needed")
        repository.insert_pending_export(session, MODEL)  # a second process: no error
        repository.reopen_unneeded_exports(session)
        session.commit()
        first = repository.claim_export(session, MODEL, "host:1", stale_before)
        second = repository.claim_export(session, MODEL, "host:2", stale_before)
        lost = repository.finish_export(session, MODEL, "host:2", "ready", "", None, None)
        won = repository.finish_export(session, MODEL, "host:1", "ready", "done", "/x", {})
        session.commit()
        row = repository.get_export(session, MODEL)

    assert (first, second, lost, won) == (True, False, False, True)
    assert row is not None and (row.status, row.detail, row.claimed_by) == ("ready", "done", None)


@both_databases
@pytest.mark.usefixtures("database")
def test_an_export_abandoned_by_a_dead_process_is_taken_over() -> None:
    with new_session(writer=True) as session:
        repository.insert_pending_export(session, MODEL)
        session.commit()
        assert repository.claim_export(session, MODEL, "dead:1", utcnow() - timedelta(minutes=10))
        session.commit()

        fresh = repository.claim_export(session, MODEL, "host:2", utcnow() - timedelta(minutes=10))
        later = repository.claim_export(session, MODEL, "host:2", utcnow() + timedelta(seconds=1))
        session.commit()

    assert (fresh, later) == (False, True)


def test_a_stored_models_exports_go_into_its_directory_so_its_download_has_them(
    settings_env: dict[str, str], tmp_path: Path
) -> None:
    store = Path(settings_env["EMBEDTUNE_ARTIFACTS_DIR"]).resolve()
    stored = store / "models" / "tuned-1"
    elsewhere = tmp_path / "registered-from-a-path"

    assert artifacts.export_root("tuned-1", stored) == stored
    assert artifacts.export_root("other", elsewhere) == store / "exports" / "other"
