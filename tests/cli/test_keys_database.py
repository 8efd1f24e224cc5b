"""``embedtune keys`` works only on a database a server has set up, and says which."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from embedtune import cli
from embedtune.migrations import upgrade_database


def test_keys_create_refuses_a_database_no_server_has_set_up(
    settings_env: dict[str, str],
) -> None:
    database = Path(settings_env["EMBEDTUNE_DATABASE_URL"].removeprefix("sqlite:///"))
    assert not database.exists()
    result = CliRunner().invoke(cli.app, ["keys", "create", "--name", "ci"])
    assert result.exit_code == 1
    assert "no embedtune database" in result.stderr
    assert str(database) in result.stderr
    assert result.stdout == ""
    assert not database.exists()


def test_keys_create_names_the_database_it_used(settings_env: dict[str, str]) -> None:
    upgrade_database(settings_env["EMBEDTUNE_DATABASE_URL"])
    result = CliRunner().invoke(cli.app, ["keys", "create", "--name", "ci"])
    assert result.exit_code == 0, result.output
    database = settings_env["EMBEDTUNE_DATABASE_URL"].removeprefix("sqlite:///")
    assert f"database: sqlite:///{database}" in result.stderr
    assert result.stdout.strip().startswith("et")
