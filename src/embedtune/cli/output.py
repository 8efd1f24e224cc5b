"""What every remote command shares: the client the root command opened, sending a call
and printing its answer (the API's JSON, or a table for people), and the one error line.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from embedtune.cli import json_output
from embedtune.client import Client, Page, calls

T = TypeVar("T")

out = Console()
err = Console(stderr=True, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
OffsetOption = Annotated[int, typer.Option(min=0, help="Items to skip.")]
LimitOption = Annotated[int, typer.Option(min=1, max=1000, help="Items to show.")]


def fail(message: str) -> NoReturn:
    """Prints ``error: message`` on stderr and exits 1."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


def echo_json(ctx: typer.Context, text: str) -> None:
    """Prints a JSON answer, after the root's ``--fields`` and ``--jq``."""
    output: json_output.Output = ctx.meta.get(json_output.OUTPUT_KEY, json_output.Output())
    try:
        typer.echo(json_output.render(text, output.fields, output.path))
    except json_output.JsonPathError as exc:
        fail(f"--jq: {exc}")


def client_of(ctx: typer.Context) -> Client:
    """The client the root command opened for this run."""
    client: Client = ctx.find_root().obj
    return client


def show(
    ctx: typer.Context, call: calls.APICall[T], as_json: bool, render: Callable[[T], None]
) -> T:
    """Sends ``call``; prints its raw JSON, or renders its parsed answer for people."""
    response = client_of(ctx).send(call)
    parsed = call.parse(response)
    if as_json:
        echo_json(ctx, response.text)
    else:
        render(parsed)
    return parsed


def when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def new_table(*columns: str) -> Table:
    rows = Table(header_style="bold", box=None, pad_edge=False)
    for column in columns:
        rows.add_column(column, overflow="fold")
    return rows


def print_table(rows: Table, nothing: str) -> None:
    """The table, or a sentence when it has no rows (a bare header looks like a bug)."""
    out.print(rows if rows.row_count else f"[dim]{nothing}[/dim]")


def fields(*pairs: tuple[str, object]) -> None:
    """Prints label/value lines (``-`` for a value that is None)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column(overflow="fold")
    for label, value in pairs:
        grid.add_row(label, "-" if value is None else str(value))
    out.print(grid)


def total(shown: int, count: int) -> None:
    """Says how many there are in all when a page shows only some."""
    if count > shown:
        out.print(f"[dim]{shown} of {count}; see --offset and --limit[/dim]")


def show_page(
    ctx: typer.Context,
    call: calls.APICall[Page[T]],
    as_json: bool,
    render: Callable[[list[T]], None],
) -> None:
    """``show`` for a page of a collection; for people, says how many there are in all."""
    page = show(ctx, call, as_json, render)
    if not as_json:
        total(len(page), page.total)
