"""The admin commands of ``embedtune``: ``serve``, ``worker`` and ``keys``.

They run beside the server, on its own database and broker, so they need the server's code
(SQLAlchemy, the migrations, torch for the worker). That code is imported inside each
command: ``embedtune --help`` and the remote commands load none of it (the import-linter
contract in ``pyproject.toml`` holds this line, with this module as its one exception).
"""

# No ``from __future__ import annotations`` here: see the package docstring.
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from embedtune.cli.output import err, fail, new_table, out, print_table, when

keys_app = typer.Typer(help="API keys (run beside the server, on its database).")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the keys as JSON.")]


@contextmanager
def _server_errors() -> Iterator[None]:
    """The server's own errors (a missing key, a bad setting) as the CLI's one-line error."""
    from embedtune.core.errors import EmbedtuneError

    try:
        yield
    except EmbedtuneError as exc:
        fail(f"{exc.detail} ({exc.code})")
    except ValueError as exc:  # settings that fail validation
        fail(str(exc))


def _database() -> str:
    """Migrates the configured database and says on stderr which one it is.

    Refuses a database no server has set up: keys live in the server's database, and a
    wrong directory or EMBEDTUNE_DATABASE_URL would create a new one the server never reads.
    """
    from sqlalchemy.engine import make_url

    from embedtune.core.config import get_settings
    from embedtune.migrations import has_schema, upgrade_database

    url = get_settings().database_url
    shown = make_url(url).render_as_string(hide_password=True)
    if not has_schema(url):
        fail(
            f"no embedtune database at {shown}: run this where the server runs, or set "
            "EMBEDTUNE_DATABASE_URL to the server's database"
        )
    err.print(f"database: {shown}", highlight=False)
    upgrade_database(url)
    return url


def serve(
    host: Annotated[str | None, typer.Option(help="Default EMBEDTUNE_HOST (127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Default EMBEDTUNE_PORT (8000)")] = None,
) -> None:
    """Run the API (and, with the embedded broker, the worker in the same process)."""
    import uvicorn

    from embedtune.auth import service as auth
    from embedtune.core.config import get_settings
    from embedtune.core.db import new_session
    from embedtune.migrations import upgrade_database
    from embedtune.startup import configure_logging

    with _server_errors():
        settings = get_settings()
        configure_logging(settings.log_level)
        host = host or settings.host
        upgrade_database(settings.database_url)
        with new_session() as session:
            any_key = auth.key_state(session).any_key
        auth.check_bind(host, settings.auth, any_key)
    if not auth.auth_required(settings.auth, any_key):
        err.print(
            f"No API key: anyone who can reach {host} can use the API"
            + (
                " (EMBEDTUNE_AUTH=disabled)."
                if settings.auth == "disabled"
                else ", so it listens on this machine only. `embedtune keys create` turns auth on."
            )
        )
    uvicorn.run(
        "embedtune.app:create_app",
        factory=True,
        host=host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
    )


def worker(
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    threads: Annotated[int, typer.Option(min=1, help="Trainings at once per process.")] = 1,
    queues: Annotated[
        list[str] | None, typer.Option("--queues", help="Queues to consume (default: all).")
    ] = None,
) -> None:
    """Run worker processes on EMBEDTUNE_BROKER_URL (Redis or RabbitMQ) until SIGTERM."""
    from embedtune import worker as workers

    with _server_errors():
        workers.run(processes, threads, queues or [])


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")] = "default",
) -> None:
    """Create a key and print it once; only its hash is stored."""
    from embedtune.auth import service as auth
    from embedtune.core.db import new_session, transaction

    with _server_errors():
        _database()
        with new_session(writer=True) as session, transaction(session):
            key, secret = auth.create_key(session, name)
    err.print(f"Created key {key.id} ({key.name}). Store it now: it is not shown again.")
    typer.echo(secret)


@keys_app.command("list")
def keys_list(as_json: JsonOption = False) -> None:
    """Every key, revoked ones included (never the secrets)."""
    import json

    from embedtune.auth import service as auth
    from embedtune.core.db import new_session

    with _server_errors():
        _database()
        with new_session() as session:
            keys = auth.list_keys(session)
    if as_json:
        rows = [
            {
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "created_at": k.created_at.isoformat(),
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in keys
        ]
        typer.echo(json.dumps(rows))
        return
    table = new_table("ID", "NAME", "STARTS WITH", "CREATED", "REVOKED")
    for key in keys:
        table.add_row(
            key.id, key.name, key.prefix + "…", when(key.created_at), when(key.revoked_at)
        )
    print_table(table, "No API keys: the API is open to whoever can reach it.")


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; requests with it are refused within seconds."""
    from embedtune.auth import service as auth
    from embedtune.core.db import new_session, transaction

    with _server_errors():
        _database()
        with new_session(writer=True) as session, transaction(session):
            key = auth.revoke_key(session, key_id)
    out.print(f"revoked {key.id} ({key.name})")
