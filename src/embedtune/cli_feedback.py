"""``embedtune feedback``: send search sessions, see what is collected, release it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from embedtune import client as api
from embedtune.feedback.schemas import BulkOut

feedback_app = typer.Typer(help="Search feedback: sessions and clicks.", no_args_is_help=True)
out = Console()

T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]


def _send(ctx: typer.Context, call: api.APICall[T], as_json: bool) -> T:
    client: api.Client = ctx.find_root().obj
    response = client.send(call)
    if as_json:
        typer.echo(response.text)
    return call.parse(response)


def _say_upload(answer: BulkOut) -> None:
    out.print(f"{answer.accepted} accepted, {answer.duplicates} duplicate(s)", highlight=False)
    for line in answer.rejected:
        out.print(f"[red]line {line.line}:[/red] {line.detail}", highlight=False)


@feedback_app.command("upload")
def feedback_upload(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    as_json: JsonOption = False,
) -> None:
    """Upload an NDJSON file of sessions, one a line; exits 1 if a line was rejected."""
    answer = _send(ctx, api.upload_feedback(file.read_bytes(), filename=file.name), as_json)
    if not as_json:
        _say_upload(answer)
    if answer.rejected:
        raise typer.Exit(1)


@feedback_app.command("summary")
def feedback_summary(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """What is collected and not yet released."""
    summary = _send(ctx, api.get_feedback_summary(), as_json)
    if as_json:
        return
    rank = summary.mean_first_click_rank
    table = Table(show_header=False, box=None, pad_edge=False)
    for label, value in (
        ("sessions", summary.sessions),
        ("with clicks", summary.sessions_with_clicks),
        ("irrelevant", summary.irrelevant_sessions),
        ("clicks", summary.clicks),
        ("distinct queries", summary.distinct_queries),
        ("distinct documents", summary.distinct_documents),
        ("click-through rate", f"{summary.click_through_rate:.1%}"),
        ("mean first-click rank", "-" if rank is None else f"{rank:.2f}"),
    ):
        table.add_row(f"[bold]{label}[/bold]", str(value))
    out.print(table)


@feedback_app.command("release")
def feedback_release(
    ctx: typer.Context,
    release_id: Annotated[
        str | None, typer.Option(help="Idempotency: the same id answers the same batch.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Turn the feedback collected since the last release into a training batch."""
    batch = _send(ctx, api.release_feedback(release_id), as_json)
    if not as_json:
        out.print(
            f"{batch.id}  {batch.num_examples} examples from {batch.num_sessions} sessions "
            f"and {batch.num_clicks} clicks (release {batch.release_id})",
            highlight=False,
        )
