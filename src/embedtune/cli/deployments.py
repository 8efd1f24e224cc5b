"""``embedtune deployments show|switch|rollback``: the blue (live) model, and
``embedtune embed``: embeddings from it."""

# No ``from __future__ import annotations`` here: see the package docstring.
from typing import TYPE_CHECKING, Annotated

import typer

from embedtune.cli.output import JsonOption, new_table, out, print_table, show, when
from embedtune.client import calls

if TYPE_CHECKING:
    from embedtune.deployments.schemas import DeploymentsOut, EmbeddingsResponse


def _render(answer: "DeploymentsOut") -> None:
    if answer.blue is None:
        out.print("[dim]No blue model yet.[/dim]")
    else:
        out.print(f"blue: [bold]{answer.blue.model_id}[/bold] since {when(answer.blue.since)}")
    if answer.loaded:
        out.print(f"[dim]in memory: {', '.join(answer.loaded)}[/dim]")
    table = new_table("MODEL", "FROM", "UNTIL")
    for period in answer.history:
        table.add_row(period.model_id, when(period.since), when(period.until))
    print_table(table, "No earlier blue models.")


def show_deployments(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The blue model, the earlier ones and the models in memory."""
    show(ctx, calls.get_deployments(), as_json, _render)


def switch(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="The model to make live.")],
    as_json: JsonOption = False,
) -> None:
    """Make a model blue (it is loaded before it takes traffic)."""
    show(ctx, calls.set_blue(model_id), as_json, _render)


def rollback(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Make the previous blue model live again."""
    show(ctx, calls.rollback(), as_json, _render)


def register(app: typer.Typer) -> None:
    """Adds the commands to ``app`` (the ``deployments`` sub-app)."""
    app.command("show")(show_deployments)
    app.command("switch")(switch)
    app.command("rollback")(rollback)


def embed(
    ctx: typer.Context,
    texts: Annotated[list[str], typer.Argument(help="One or more texts.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Default: the blue (live) model.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Embed texts with the live model (or --model); --json prints the vectors in full."""

    def render(answer: "EmbeddingsResponse") -> None:
        table = new_table("#", "DIMS", "VECTOR", "TEXT")
        for item, text in zip(answer.data, texts, strict=True):
            vector = item.embedding if isinstance(item.embedding, list) else []
            head = ", ".join(f"{x:+.4f}" for x in vector[:4])
            table.add_row(str(item.index), str(len(vector)), f"[{head}, …]", text)
        out.print(f"[dim]model {answer.model} · {answer.usage.total_tokens} tokens[/dim]")
        out.print(table)

    show(ctx, calls.create_embeddings(texts, model=model), as_json, render)
