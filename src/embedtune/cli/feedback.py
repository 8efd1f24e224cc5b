"""``embedtune feedback upload|summary|release``: search sessions and their release.

``--json``, ``--fields`` and ``--jq`` work as everywhere.
"""

# No ``from __future__ import annotations`` here: see the package docstring.
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from embedtune.cli.output import JsonOption, out, show
from embedtune.client import calls

if TYPE_CHECKING:
    from embedtune.batches.schemas import BatchOut
    from embedtune.feedback.schemas import BulkOut, FeedbackSummary

feedback_app = typer.Typer(help="Search feedback: sessions and clicks.", no_args_is_help=True)


def _say_upload(answer: "BulkOut") -> None:
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
    call = calls.upload_feedback(file.read_bytes(), filename=file.name)
    if show(ctx, call, as_json, _say_upload).rejected:
        raise typer.Exit(1)


@feedback_app.command("summary")
def feedback_summary(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """What is collected and not yet released."""
    show(ctx, calls.get_feedback_summary(), as_json, _say_summary)


def _say_summary(summary: "FeedbackSummary") -> None:
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
    show(ctx, calls.release_feedback(release_id), as_json, _say_release)


def _say_release(batch: "BatchOut") -> None:
    out.print(
        f"{batch.id}  {batch.num_examples} examples from {batch.num_sessions} sessions "
        f"and {batch.num_clicks} clicks (release {batch.release_id})",
        highlight=False,
    )
