"""The ``embedtune`` command.

Every command talks to a server through ``embedtune.client`` (``--url``/``EMBEDTUNE_URL``,
``EMBEDTUNE_API_KEY``), except the admin commands ``serve``, ``worker`` and ``keys``
(``embedtune.cli_admin``), which run beside the server on its database. Tables are for
people; ``--json`` (before or after the subcommand) prints the API's answer exactly as it
came, ``--fields``/``--jq`` pick parts of it. Errors are one line on stderr, ``error: …``:
exit code 1 for a failed request, 2 for a wrong command line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from embedtune import cli_admin, cli_deployments, cli_json
from embedtune import client as api
from embedtune.batches.schemas import BatchOut
from embedtune.cli_feedback import feedback_app
from embedtune.client import calls
from embedtune.deployments.schemas import EmbeddingsResponse
from embedtune.fine_tuning.schemas import TaskEventOut, TaskMetricsOut, TaskOut
from embedtune.fine_tuning.states import TaskStatus
from embedtune.models.schemas import ModelOut
from embedtune.training.metric_names import METRIC_NAMES

T = TypeVar("T")

#: ``task follow`` exit codes, by how the task ended.
FOLLOW_EXIT_CODES = {TaskStatus.completed: 0, TaskStatus.failed: 1, TaskStatus.canceled: 2}

out = Console()
err = Console(stderr=True, soft_wrap=True)


class _Commands(TyperGroup):
    """One error style: a line on stderr, ``error: …``; exit 1 for a failed request, 2 for a
    wrong command line (no usage box)."""

    # ``Any``: the Context class typer expects lives in its private vendored click.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except api.EmbedtuneAPIError as exc:
            _fail(f"{exc.detail} ({exc.code})")
        except api.EmbedtuneClientError as exc:
            _fail(str(exc))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, cli_json.hoist(args) if ctx.parent is None else args)

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


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


app = typer.Typer(
    cls=_Commands,
    help="Fine-tune embedding models on your own data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
batch_app = typer.Typer(help="Training batches.", no_args_is_help=True)
model_app = typer.Typer(help="Embedding models.", no_args_is_help=True)
task_app = typer.Typer(help="Fine-tuning tasks.", no_args_is_help=True)
deployments_app = typer.Typer(help="The blue (live) model.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")
app.add_typer(model_app, name="model")
app.add_typer(task_app, name="task")
app.add_typer(deployments_app, name="deployments")
cli_deployments.register(deployments_app)
# Admin commands: they import the server's code, inside each command only.
app.command()(cli_admin.serve)
app.command()(cli_admin.worker)
app.add_typer(cli_admin.keys_app, name="keys")
app.add_typer(feedback_app, name="feedback")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
OffsetOption = Annotated[int, typer.Option(min=0, help="Items to skip.")]
LimitOption = Annotated[int, typer.Option(min=1, max=1000, help="Items to show.")]


@app.callback()
def _connection(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(envvar="EMBEDTUNE_URL", help="The embedtune server.")
    ] = api.DEFAULT_URL,
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
        output = cli_json.Output.parse(fields, jq)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--jq" if jq else "--fields") from exc
    ctx.meta[cli_json.OUTPUT_KEY] = output
    if as_json or output.fields is not None or output.path is not None:
        ctx.default_map = cli_json.json_defaults(ctx.command)
    client = api.Client(url, api_key)
    ctx.call_on_close(client.close)
    ctx.obj = client


def _echo_json(ctx: typer.Context, text: str) -> None:
    """Prints a JSON answer, after the root's ``--fields`` and ``--jq``."""
    output: cli_json.Output = ctx.meta.get(cli_json.OUTPUT_KEY, cli_json.Output())
    try:
        typer.echo(cli_json.render(text, output.fields, output.path))
    except cli_json.JsonPathError as exc:
        _fail(f"--jq: {exc}")


def _client(ctx: typer.Context) -> api.Client:
    client: api.Client = ctx.find_root().obj
    return client


def _show(
    ctx: typer.Context, call: calls.APICall[T], as_json: bool, render: Callable[[T], None]
) -> T:
    """Sends ``call``; prints its raw JSON, or renders its parsed answer for people."""
    response = _client(ctx).send(call)
    parsed = call.parse(response)
    if as_json:
        _echo_json(ctx, response.text)
    else:
        render(parsed)
    return parsed


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _table(*columns: str) -> Table:
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _print(table: Table, nothing: str) -> None:
    """The table, or a sentence when it has no rows (a bare header looks like a bug)."""
    out.print(table if table.row_count else f"[dim]{nothing}[/dim]")


def _total(shown: int, total: int) -> None:
    if total > shown:
        out.print(f"[dim]{shown} of {total}; see --offset and --limit[/dim]")


# ---- batches ------------------------------------------------------------------------------


def _batch_table(batches: list[BatchOut]) -> None:
    table = _table("ID", "NAME", "EXAMPLES", "CREATED")
    for batch in batches:
        table.add_row(batch.id, batch.name, str(batch.num_examples), _when(batch.created_at))
    _print(table, "No batches.")


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
        _show(ctx, call, as_json, lambda b: out.print(f"{b.id}  {b.num_examples} examples"))


@batch_app.command("list")
def batch_list(
    ctx: typer.Context,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
) -> None:
    """Batches, newest first."""
    page = _show(ctx, calls.list_batches(offset=offset, limit=limit), as_json, _batch_table)
    if not as_json:
        _total(len(page), page.total)


@batch_app.command("show")
def batch_show(ctx: typer.Context, batch_id: str, as_json: JsonOption = False) -> None:
    """One batch."""

    def render(batch: BatchOut) -> None:
        _fields(
            ("id", batch.id),
            ("name", batch.name),
            ("examples", batch.num_examples),
            ("created", _when(batch.created_at)),
        )

    _show(ctx, calls.get_batch(batch_id), as_json, render)


@batch_app.command("sample")
def batch_sample(
    ctx: typer.Context,
    output: Annotated[
        Path, typer.Option("-o", "--output", dir_okay=False, help="Where to write it.")
    ] = Path("sample.jsonl"),
) -> None:
    """Download the server's sample batch (real pairs from Python's documentation)."""
    data = _client(ctx).batches.sample()
    output.write_bytes(data)
    out.print(f"{output}  {len(data.splitlines())} examples")


# ---- models -------------------------------------------------------------------------------


def _model_table(models: list[ModelOut]) -> None:
    table = _table("ID", "NAME", "PLUGIN", "FROM", "CREATED")
    for model in models:
        table.add_row(
            model.id, model.name, model.plugin, model.parent_id or "-", _when(model.created_at)
        )
    _print(table, "No models.")


def _model_detail(model: ModelOut) -> None:
    _fields(
        ("id", model.id),
        ("name", model.name),
        ("plugin", model.plugin),
        ("fine-tuned from", model.parent_id),
        ("by task", model.task_id),
        ("created", _when(model.created_at)),
        ("metrics", json.dumps(model.metrics) if model.metrics else None),
    )


def _fields(*pairs: tuple[str, object]) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column(overflow="fold")
    for label, value in pairs:
        table.add_row(label, "-" if value is None else str(value))
    out.print(table)


@model_app.command("list")
def model_list(
    ctx: typer.Context,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
) -> None:
    """Registered models, newest first."""
    page = _show(ctx, calls.list_models(offset=offset, limit=limit), as_json, _model_table)
    if not as_json:
        _total(len(page), page.total)


@model_app.command("show")
def model_show(ctx: typer.Context, model_id: str, as_json: JsonOption = False) -> None:
    """One model."""
    _show(ctx, calls.get_model(model_id), as_json, _model_detail)


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
        folder = _client(ctx).models.download(model_id, output)
    out.print(str(folder))


# ---- tasks --------------------------------------------------------------------------------


def _task_table(tasks: list[TaskOut]) -> None:
    table = _table("ID", "MODEL", "STATUS", "PROGRESS", "CREATED", "RESULT")
    for task in tasks:
        result = task.best_model_id or (task.error.code if task.error else "-")
        table.add_row(
            task.id,
            task.embedding_model_id,
            _status(task.status),
            f"{task.progress:.0%}",
            _when(task.created_at),
            result,
        )
    _print(table, "No tasks.")


_STATUS_STYLE = {
    TaskStatus.pending: "dim",
    TaskStatus.processing: "blue",
    TaskStatus.completed: "green",
    TaskStatus.failed: "red",
    TaskStatus.canceled: "yellow",
}


def _status(status: TaskStatus) -> str:
    return f"[{_STATUS_STYLE[status]}]{status.value}[/]"


def _task_detail(task: TaskOut) -> None:
    training = task.training
    _fields(
        ("id", task.id),
        ("status", _status(task.status)),
        ("model", task.embedding_model_id),
        ("batch", task.batch_id),
        ("progress", f"{task.progress:.0%}" + (f" (step {training.step})" if training else "")),
        ("fine-tuned model", task.best_model_id),
        ("error", f"{task.error.code}: {task.error.message}" if task.error else None),
        ("attempts", task.attempts),
        ("deploy as blue", task.deploy_as_blue),
        ("wait on conflict", task.wait_on_conflict),
        ("metadata", json.dumps(task.metadata) if task.metadata else None),
        ("created", _when(task.created_at)),
        ("started", _when(task.started_at)),
        ("finished", _when(task.finished_at)),
    )


def _parse_metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc.msg}", param_hint="--metadata") from exc
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--metadata")
    return value


def _with_training_options(
    metadata: dict[str, Any] | None, options: dict[str, Any]
) -> dict[str, Any] | None:
    """``metadata`` with the flags given set under ``metadata["training"]``."""
    given = {name: value for name, value in options.items() if value is not None}
    if not given:
        return metadata
    merged = dict(metadata or {})
    training = merged.get("training")
    if training is not None and not isinstance(training, dict):
        raise typer.BadParameter("'training' must be a JSON object", param_hint="--metadata")
    merged["training"] = {**(training or {}), **given}
    return merged


IntervalOption = Annotated[
    float, typer.Option("--interval", min=0.05, help="Seconds between two polls.")
]


@task_app.command("create")
def task_create(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="The base model's id.")],
    batch: Annotated[str | None, typer.Option("--batch", "-b", help="A batch id.")] = None,
    metadata: Annotated[
        str | None,
        typer.Option(
            help="The task's metadata, a JSON object; training options go under "
            "'training': '{\"training\": {\"epochs\": 2}}'. The flags below override it."
        ),
    ] = None,
    epochs: Annotated[float | None, typer.Option(min=0, help="training.epochs")] = None,
    learning_rate: Annotated[
        float | None, typer.Option(min=0, help="training.learning_rate")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="training.batch_size")] = None,
    max_steps: Annotated[int | None, typer.Option(min=1, help="training.max_steps")] = None,
    loss: Annotated[str | None, typer.Option(help="training.loss, e.g. mnrl")] = None,
    validation_batch: Annotated[
        str | None, typer.Option(help="training.validation_batch_id: held-out pairs.")
    ] = None,
    deploy_as_blue: Annotated[
        bool, typer.Option("--deploy-as-blue", help="Make the result live if it is better.")
    ] = False,
    wait_on_conflict: Annotated[
        bool, typer.Option("--wait-on-conflict", help="Wait for another deployment to end.")
    ] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Default: a new random key (safe retries).")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Then follow it.")] = False,
    interval: IntervalOption = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Create a fine-tuning task (see the API docs, /docs, for every training option)."""
    options = {
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "max_steps": max_steps,
        "loss": loss,
        "validation_batch_id": validation_batch,
    }
    call = calls.create_task(
        model,
        batch_id=batch,
        metadata=_with_training_options(_parse_metadata(metadata), options),
        deploy_as_blue=deploy_as_blue,
        wait_on_conflict=wait_on_conflict,
        idempotency_key=idempotency_key,
    )
    task = _show(ctx, call, as_json and not follow, lambda t: out.print(f"created {t.id}"))
    if follow:
        _follow(ctx, task.id, interval, as_json)


@task_app.command("list")
def task_list(
    ctx: typer.Context,
    status: Annotated[
        list[TaskStatus] | None, typer.Option("--status", "-s", help="Repeatable.")
    ] = None,
    offset: OffsetOption = 0,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
) -> None:
    """Tasks, newest first."""
    call = calls.list_tasks(status=[s.value for s in status or []], offset=offset, limit=limit)
    page = _show(ctx, call, as_json, _task_table)
    if not as_json:
        _total(len(page), page.total)


@task_app.command("show")
def task_show(ctx: typer.Context, task_id: str, as_json: JsonOption = False) -> None:
    """One task."""
    _show(ctx, calls.get_task(task_id), as_json, _task_detail)


@task_app.command("cancel")
def task_cancel(ctx: typer.Context, task_id: str, as_json: JsonOption = False) -> None:
    """Cancel a pending or processing task."""
    _show(ctx, calls.cancel_task(task_id), as_json, lambda t: out.print(f"{t.id} {t.status.value}"))


@task_app.command("restart")
def task_restart(ctx: typer.Context, task_id: str, as_json: JsonOption = False) -> None:
    """Run a failed, canceled or stuck task again."""
    _show(
        ctx, calls.restart_task(task_id), as_json, lambda t: out.print(f"{t.id} {t.status.value}")
    )


@task_app.command("metrics")
def task_metrics(ctx: typer.Context, task_id: str, as_json: JsonOption = False) -> None:
    """A task's held-out evaluation: before and after training."""
    _show(ctx, calls.get_task_metrics(task_id), as_json, _metrics_table)


def _metrics_table(answer: TaskMetricsOut) -> None:
    metrics = answer.metrics or {}
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    if not before and not after:
        out.print(f"[dim]No evaluation yet (task {answer.status.value}).[/dim]")
        return
    table = _table("METRIC", "BEFORE", "AFTER", "CHANGE")
    for name in [*METRIC_NAMES, *(n for n in {**before, **after} if n not in METRIC_NAMES)]:
        old, new = before.get(name), after.get(name)
        if old is None and new is None:
            continue
        change = f"{new - old:+.4f}" if isinstance(old, float) and isinstance(new, float) else "-"
        table.add_row(name, _number(old), _number(new), change)
    out.print(table)


def _number(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-" if value is None else str(value)


@task_app.command("follow")
def task_follow(
    ctx: typer.Context, task_id: str, interval: IntervalOption = 1.0, as_json: JsonOption = False
) -> None:
    """Show a task's progress until it ends; exit code 0 completed, 1 failed, 2 canceled."""
    _follow(ctx, task_id, interval, as_json)


def _progress_detail(task: TaskOut) -> str:
    parts = [task.status.value]
    if task.queue_position is not None:
        parts.append(f"#{task.queue_position} in queue")
    if task.estimated_start_at is not None:
        parts.append(f"starts ~{task.estimated_start_at:%H:%M:%S}")
    if task.estimated_finish_at is not None:
        parts.append(f"ends ~{task.estimated_finish_at:%H:%M:%S}")
    training = task.training
    if training is None:
        return " · ".join(parts)
    if training.step is not None:
        parts.append(
            f"step {training.step}" + (f"/{training.total_steps}" if training.total_steps else "")
        )
    if training.loss is not None:
        parts.append(f"loss {training.loss:.4f}")
    return " · ".join(parts)


@task_app.command("events")
def task_events(ctx: typer.Context, task_id: str, as_json: JsonOption = False) -> None:
    """A task's history, oldest first: state changes, progress, evaluations, checkpoints."""

    def table(events: list[TaskEventOut]) -> None:
        rows = _table("ID", "AT", "KIND", "DETAIL")
        for event in events:
            detail = json.dumps(event.detail, separators=(",", ":"))
            rows.add_row(str(event.id), _when(event.created_at), event.kind, detail)
        _print(rows, "no events")

    _show(ctx, calls.list_task_events(task_id), as_json, table)


def _follow(ctx: typer.Context, task_id: str, interval: float, as_json: bool) -> NoReturn:
    client = _client(ctx)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
        console=err if as_json else out,
        transient=as_json,
    )
    with progress:
        bar = progress.add_task(task_id, total=1.0, detail="")
        for task in client.tasks.follow(task_id, poll_interval=interval):
            progress.update(bar, completed=task.progress, detail=_progress_detail(task))
    if as_json:
        _echo_json(ctx, client.send(calls.get_task(task_id)).text)
    else:
        _say_how_it_ended(task)
    raise typer.Exit(FOLLOW_EXIT_CODES[task.status])


def _say_how_it_ended(task: TaskOut) -> None:
    if task.status is TaskStatus.completed:
        out.print(f"[green]completed[/green]: fine-tuned model {task.best_model_id}")
    elif task.status is TaskStatus.failed:
        error = f"{task.error.code}: {task.error.message}" if task.error else "no detail"
        out.print(f"[red]failed[/red]: {error}", highlight=False)
    else:
        out.print("[yellow]canceled[/yellow]")


# ---- inference ----------------------------------------------------------------------------


@app.command()
def embed(
    ctx: typer.Context,
    texts: Annotated[list[str], typer.Argument(help="One or more texts.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Default: the blue (live) model.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Embed texts with the live model (or --model); --json prints the vectors in full."""

    def render(answer: EmbeddingsResponse) -> None:
        table = _table("#", "DIMS", "VECTOR", "TEXT")
        for item, text in zip(answer.data, texts, strict=True):
            vector = item.embedding if isinstance(item.embedding, list) else []
            head = ", ".join(f"{x:+.4f}" for x in vector[:4])
            table.add_row(str(item.index), str(len(vector)), f"[{head}, …]", text)
        out.print(f"[dim]model {answer.model} · {answer.usage.total_tokens} tokens[/dim]")
        out.print(table)

    _show(ctx, calls.create_embeddings(texts, model=model), as_json, render)


def main() -> None:
    app()
