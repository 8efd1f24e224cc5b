"""``embedtune model list|show|download``: the embedding models."""

# No ``from __future__ import annotations`` here: see the package docstring.
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from embedtune.cli.output import (
    JsonOption,
    LimitOption,
    OffsetOption,
    client_of,
    err,
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
    from embedtune.models.schemas import ModelOut

model_app = typer.Typer(help="Embedding models.", no_args_is_help=True)


def _model_table(models: "list[ModelOut]") -> None:
    table = new_table("ID", "NAME", "PLUGIN", "FROM", "CREATED")
    for model in models:
        table.add_row(
            model.id, model.name, model.plugin, model.parent_id or "-", when(model.created_at)
        )
    print_table(table, "No models.")


def _model_detail(model: "ModelOut") -> None:
    fields(
        ("id", model.id),
        ("name", model.name),
        ("plugin", model.plugin),
        ("fine-tuned from", model.parent_id),
        ("by task", model.task_id),
        ("created", when(model.created_at)),
        ("metrics", json.dumps(model.metrics) if model.metrics else None),
    )


@model_app.command("list")
def model_list(
    ctx: typer.Context,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
) -> None:
    """Registered models, newest first."""
    show_page(ctx, calls.list_models(offset=offset, limit=limit), as_json, _model_table)


@model_app.command("show")
def model_show(ctx: typer.Context, model_id: str, as_json: JsonOption = False) -> None:
    """One model."""
    show(ctx, calls.get_model(model_id), as_json, _model_detail)


@model_app.command("download")
def model_download(
    ctx: typer.Context,
    model_id: str,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Directory to unpack into.")
    ] = Path("."),
) -> None:
    """Download a model and unpack it (a Sentence-Transformers directory)."""
    with err.status(f"downloading {model_id}…"):
        folder = client_of(ctx).models.download(model_id, output)
    out.print(str(folder))
