"""``embedtune batch upload|list|show|sample``: training batches."""

# No ``from __future__ import annotations`` here: see the package docstring.
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from embedtune.cli.output import (
    JsonOption,
    LimitOption,
    OffsetOption,
    client_of,
    fields,
    new_table,
    out,
    print_table,
    show,
    show_page,
    when,
)
from embedtune.client import calls

if TYPE_CHECKING:
    from embedtune.batches.schemas import BatchOut

batch_app = typer.Typer(help="Training batches.", no_args_is_help=True)


def _batch_table(batches: "list[BatchOut]") -> None:
    table = new_table("ID", "NAME", "EXAMPLES", "CREATED")
    for batch in batches:
        table.add_row(batch.id, batch.name, str(batch.num_examples), when(batch.created_at))
    print_table(table, "No batches.")


@batch_app.command("upload")
def batch_upload(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    name: Annotated[str | None, typer.Option(help="Default: the file's name.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Upload a JSONL file of {"query", "positive", "negative"?} lines."""
    with file.open("rb") as handle:
        call = calls.upload_batch(handle, filename=file.name, name=name)
        show(ctx, call, as_json, lambda b: out.print(f"{b.id}  {b.num_examples} examples"))


@batch_app.command("list")
def batch_list(
    ctx: typer.Context,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
) -> None:
    """Batches, newest first."""
    show_page(ctx, calls.list_batches(offset=offset, limit=limit), as_json, _batch_table)


@batch_app.command("show")
def batch_show(ctx: typer.Context, batch_id: str, as_json: JsonOption = False) -> None:
    """One batch."""

    def render(batch: "BatchOut") -> None:
        fields(
            ("id", batch.id),
            ("name", batch.name),
            ("examples", batch.num_examples),
            ("created", when(batch.created_at)),
        )

    show(ctx, calls.get_batch(batch_id), as_json, render)


@batch_app.command("sample")
def batch_sample(
    ctx: typer.Context,
    output: Annotated[
        Path, typer.Option("-o", "--output", dir_okay=False, help="Where to write it.")
    ] = Path("sample.jsonl"),
) -> None:
    """Download the server's sample batch (real pairs from Python's documentation)."""
    data = client_of(ctx).batches.sample()
    output.write_bytes(data)
    out.print(f"{output}  {len(data.splitlines())} examples")
