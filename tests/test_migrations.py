"""The migrations build exactly the schema the code declares."""

from __future__ import annotations

import multiprocessing

from alembic import command
from sqlalchemy import inspect

from conftest import both_databases
from embedtune.core.db import get_engine
from embedtune.migrations import alembic_config, upgrade_database


@both_databases
def test_alembic_check_is_clean_after_upgrade(settings_env: dict[str, str]) -> None:
    url = settings_env["EMBEDTUNE_DATABASE_URL"]
    upgrade_database(url)
    command.check(alembic_config(url))  # raises if the models and migrations differ


@both_databases
def test_downgrade_and_upgrade_again(settings_env: dict[str, str]) -> None:
    url = settings_env["EMBEDTUNE_DATABASE_URL"]
    upgrade_database(url)
    command.downgrade(alembic_config(url), "base")
    assert _tables(url) <= {"alembic_version"}
    upgrade_database(url)
    assert {"fine_tuning_task", "embedding_model", "training_batch"} <= _tables(url)
    command.check(alembic_config(url))


def _tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names())


@both_databases
def test_processes_starting_together_on_a_new_database_all_migrate(
    settings_env: dict[str, str],
) -> None:
    url = settings_env["EMBEDTUNE_DATABASE_URL"]
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=upgrade_database, args=(url,)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    command.check(alembic_config(url))
