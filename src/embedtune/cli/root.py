"""The ``embedtune`` command: the root options (where the server is, the output), one
error style, and the sub-commands of the other modules of this package."""

# No ``from __future__ import annotations`` here: see the package docstring.
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from embedtune.cli import admin, deployments, json_output
from embedtune.cli.batches import batch_app
from embedtune.cli.feedback import feedback_app
from embedtune.cli.models import model_app
from embedtune.cli.output import err, fail
from embedtune.cli.tasks import task_app
from embedtune.client import DEFAULT_URL, Client, EmbedtuneAPIError, EmbedtuneClientError


class _Commands(TyperGroup):
    """One error style: a line on stderr, ``error: …``; exit 1 for a failed request, 2 for a
    wrong command line (no usage box)."""

    # ``Any``: the Context class typer expects lives in its private vendored click.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EmbedtuneAPIError as exc:
            fail(f"{exc.detail} ({exc.code})")
        except EmbedtuneClientError as exc:
            fail(str(exc))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, json_output.hoist(args) if ctx.parent is None else args)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def run() -> Any:
            return super(_Commands, self).main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )

        if not standalone_mode:
            return run()
        try:
            code = run()
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # help was asked for by omission
                typer.echo(exc.format_message())
                sys.exit(exc.exit_code)
            where = getattr(exc, "ctx", None)
            hint = f" (see '{where.command_path} --help')" if where is not None else ""
            err.print(f"[red]error:[/red] {exc.format_message()}{hint}", highlight=False)
            sys.exit(exc.exit_code)
        except typer.Abort:
            err.print("[red]error:[/red] aborted", highlight=False)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_Commands,
    help="Fine-tune embedding models on your own data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
deployments_app = typer.Typer(help="The blue (live) model.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")
app.add_typer(model_app, name="model")
app.add_typer(task_app, name="task")
app.add_typer(deployments_app, name="deployments")
deployments.register(deployments_app)
# Admin commands: they import the server's code, inside each command only.
app.command()(admin.serve)
app.command()(admin.worker)
app.add_typer(admin.keys_app, name="keys")
app.add_typer(feedback_app, name="feedback")
app.command()(deployments.embed)


@app.callback()
def _connection(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(envvar="EMBEDTUNE_URL", help="The embedtune server.")
    ] = DEFAULT_URL,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="EMBEDTUNE_API_KEY", help="API key, if the server requires one."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the API's JSON answer (any subcommand).")
    ] = False,
    fields: Annotated[
        str | None, typer.Option(help="With JSON: keep these keys, e.g. 'id,status'.")
    ] = None,
    jq: Annotated[
        str | None, typer.Option(help="With JSON: print this path of it, e.g. '.[].id'.")
    ] = None,
) -> None:
    try:
        output = json_output.Output.parse(fields, jq)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--jq" if jq else "--fields") from exc
    ctx.meta[json_output.OUTPUT_KEY] = output
    if as_json or output.fields is not None or output.path is not None:
        ctx.default_map = json_output.json_defaults(ctx.command)
    client = Client(url, api_key)
    ctx.call_on_close(client.close)
    ctx.obj = client


def main() -> None:
    app()
