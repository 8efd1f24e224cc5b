"""``embedtune deployments show|switch|rollback``: the blue (live) model.

Registered on ``embedtune.cli``'s ``deployments`` sub-app; the output helpers are that
module's, imported when a command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from embedtune.client import calls
from embedtune.deployments.schemas import DeploymentsOut

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]


def _render(answer: DeploymentsOut) -> None:
    from embedtune.cli import _print, _table, _when, out

    if answer.blue is None:
        out.print("[dim]No blue model yet.[/dim]")
    else:
        out.print(f"blue: [bold]{answer.blue.model_id}[/bold] since {_when(answer.blue.since)}")
    if answer.loaded:
        out.print(f"[dim]in memory: {', '.join(answer.loaded)}[/dim]")
    table = _table("MODEL", "FROM", "UNTIL")
    for period in answer.history:
        table.add_row(period.model_id, _when(period.since), _when(period.until))
    _print(table, "No earlier blue models.")


def show(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The blue model, the earlier ones and the models in memory."""
    from embedtune.cli import _show

    _show(ctx, calls.get_deployments(), as_json, _render)


def switch(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="The model to make live.")],
    as_json: JsonOption = False,
) -> None:
    """Make a model blue (it is loaded before it takes traffic)."""
    from embedtune.cli import _show

    _show(ctx, calls.set_blue(model_id), as_json, _render)


def rollback(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Make the previous blue model live again."""
    from embedtune.cli import _show

    _show(ctx, calls.rollback(), as_json, _render)


def register(app: typer.Typer) -> None:
    """Adds the commands to ``app`` (the ``deployments`` sub-app)."""
    app.command("show")(show)
    app.command("switch")(switch)
    app.command("rollback")(rollback)
