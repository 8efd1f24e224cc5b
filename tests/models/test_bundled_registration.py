"""Processes starting together all register the bundled model without an error."""

from __future__ import annotations

import threading

import pytest

from conftest import wait_until_blocked_on_a_lock
from embedtune.core.db import new_session, transaction
from embedtune.migrations import upgrade_database
from embedtune.models import repository, service


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_processes_registering_the_bundled_model_at_once_both_succeed(
    settings_env: dict[str, str],
) -> None:
    upgrade_database(settings_env["EMBEDTUNE_DATABASE_URL"])
    errors: list[BaseException] = []

    def second_process() -> None:
        try:
            with new_session(writer=True) as session, transaction(session):
                service.register_bundled_model(session)
        except BaseException as exc:
            errors.append(exc)

    with new_session(writer=True) as first, new_session() as observer:
        repository.upsert_path(first, service.BUNDLED_MODEL_ID, "bundled", "/first", "plugin")
        thread = threading.Thread(target=second_process)
        thread.start()
        wait_until_blocked_on_a_lock(observer)
        first.commit()
        thread.join(30)
    assert errors == []
    with new_session() as session:
        model = repository.get(session, service.BUNDLED_MODEL_ID)
        assert model is not None
        assert model.path != "/first"  # the second registration's path won
