"""The client and the CLI's remote commands start without the server's heavy modules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Packages only the server (and the admin commands) may load.
SERVER_ONLY = {
    "torch",
    "transformers",
    "sentence_transformers",
    "datasets",
    "sqlalchemy",
    "alembic",
    "fastapi",
}

#: What the console script runs (``embedtune.cli.root:main``).
_RUN_CLI = """
import json, sys
from embedtune.cli import root
sys.argv = ["embedtune", *{args!r}]
try:
    root.main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({{"code": code, "modules": sorted(sys.modules)}}))
"""


def _modules(code: str) -> tuple[object, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer.get("code"), answer["modules"]


def _loaded(code: str) -> tuple[object, set[str]]:
    exit_code, modules = _modules(code)
    return exit_code, {name.split(".")[0] for name in modules}


@pytest.mark.parametrize("module", ["embedtune.client", "embedtune.cli.root"])
def test_importing_the_client_or_the_cli_loads_no_server_package(module: str) -> None:
    code = f"import json, sys, {module}; print(json.dumps({{'modules': sorted(sys.modules)}}))"
    _, packages = _loaded(code)
    assert packages & SERVER_ONLY == set()


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["task", "create", "--help"],
        ["--url", "http://127.0.0.1:9", "task", "list", "--json"],
    ],
    ids=["help", "subcommand-help", "remote-command"],
)
def test_cli_commands_load_no_server_package(args: list[str]) -> None:
    exit_code, packages = _loaded(_RUN_CLI.format(args=args))
    assert exit_code == (1 if "--url" in args else 0)
    assert packages & SERVER_ONLY == set()


def _wire_schemas(args: list[str]) -> set[str]:
    _, modules = _modules(_RUN_CLI.format(args=args))
    return {name for name in modules if name.startswith("embedtune.") and "schemas" in name}


@pytest.mark.parametrize("args", [["--help"], ["task", "--help"], ["task", "list", "--help"]])
def test_help_loads_no_wire_schema(args: list[str]) -> None:
    """Start-up time: the schemas are imported by the calls that read them."""
    assert _wire_schemas(args) == set()


def test_a_remote_command_loads_only_the_schemas_it_reads() -> None:
    args = ["--url", "http://127.0.0.1:9", "task", "list", "--json"]
    assert _wire_schemas(args) <= {"embedtune.fine_tuning.schemas"}
