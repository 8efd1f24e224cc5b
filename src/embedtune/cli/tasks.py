"""``embedtune task create|list|show|cancel|restart|metrics|follow|events``: fine-tuning
tasks, with a live progress bar for ``follow``."""

# No ``from __future__ import annotations`` here: see the package docstring.
import json
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from embedtune.cli.output import (
    JsonOption,
    LimitOption,
    OffsetOption,
    client_of,
    echo_json,
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
from embedtune.fine_tuning.states import TaskStatus
from embedtune.training.metric_names import METRIC_NAMES

if TYPE_CHECKING:
    from embedtune.fine_tuning.schemas import TaskEventOut, TaskMetricsOut, TaskOut

#: ``task follow`` exit codes, by how the task ended.
FOLLOW_EXIT_CODES = {TaskStatus.completed: 0, TaskStatus.failed: 1, TaskStatus.canceled: 2}

task_app = typer.Typer(help="Fine-tuning tasks.", no_args_is_help=True)


def _task_table(tasks: "list[TaskOut]") -> None:
    table = new_table("ID", "MODEL", "STATUS", "PROGRESS", "CREATED", "RESULT")
    for task in tasks:
        result = task.best_model_id or (task.error.code if task.error else "-")
        table.add_row(
            task.id,
            task.embedding_model_id,
            _status(task.status),
            f"{task.progress:.0%}",
            when(task.created_at),
            result,
        )
    print_table(table, "No tasks.")


_STATUS_STYLE = {
    TaskStatus.pending: "dim",
    TaskStatus.processing: "blue",
    TaskStatus.completed: "green",
    TaskStatus.failed: "red",
    TaskStatus.canceled: "yellow",
}


def _status(status: TaskStatus) -> str:
    return f"[{_STATUS_STYLE[status]}]{status.value}[/]"


def _task_detail(task: "TaskOut") -> None:
    training = task.training
    fields(
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
        ("created", when(task.created_at)),
        ("started", when(task.started_at)),
        ("finished", when(task.finished_at)),
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
    task = show(ctx, call, as_json and not follow, lambda t: out.print(f"created {t.id}"))
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
    show_page(ctx, call, as_json, _task_table)


@task_app.command("show")
def task_show(ctx: typer.Context, task_id: str, as_json: JsonOption = False) -> None:
    """One task."""
    show(ctx, calls.get_task(task_id), as_json, _task_detail)


@task_app.command("cancel")
def task_cancel(ctx: typer.Context, task_id: str, as_json: JsonOption = False) -> None:
    """Cancel a pending or processing task."""
    show(ctx, calls.cancel_task(task_id), as_json, lambda t: out.print(f"{t.id} {t.status.value}"))


@task_app.command("restart")
def task_restart(ctx: typer.Context, task_id: str, as_json: JsonOption = False) -> None:
    """Run a failed, canceled or stuck task again."""
    show(ctx, calls.restart_task(task_id), as_json, lambda t: out.print(f"{t.id} {t.status.value}"))


@task_app.command("metrics")
def task_metrics(ctx: typer.Context, task_id: str, as_json: JsonOption = False) -> None:
    """A task's held-out evaluation: before and after training."""
    show(ctx, calls.get_task_metrics(task_id), as_json, _metrics_table)


def _metrics_table(answer: "TaskMetricsOut") -> None:
    metrics = answer.metrics or {}
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    if not before and not after:
        out.print(f"[dim]No evaluation yet (task {answer.status.value}).[/dim]")
        return
    table = new_table("METRIC", "BEFORE", "AFTER", "CHANGE")
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


def _progress_detail(task: "TaskOut") -> str:
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

    def table(events: "list[TaskEventOut]") -> None:
        rows = new_table("ID", "AT", "KIND", "DETAIL")
        for event in events:
            detail = json.dumps(event.detail, separators=(",", ":"))
            rows.add_row(str(event.id), when(event.created_at), event.kind, detail)
        print_table(rows, "no events")

    show(ctx, calls.list_task_events(task_id), as_json, table)


def _follow(ctx: typer.Context, task_id: str, interval: float, as_json: bool) -> NoReturn:
    client = client_of(ctx)
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
        echo_json(ctx, client.send(calls.get_task(task_id)).text)
    else:
        _say_how_it_ended(task)
    raise typer.Exit(FOLLOW_EXIT_CODES[task.status])


def _say_how_it_ended(task: "TaskOut") -> None:
    if task.status is TaskStatus.completed:
        out.print(f"[green]completed[/green]: fine-tuned model {task.best_model_id}")
    elif task.status is TaskStatus.failed:
        error = f"{task.error.code}: {task.error.message}" if task.error else "no detail"
        out.print(f"[red]failed[/red]: {error}", highlight=False)
    else:
        out.print("[yellow]canceled[/yellow]")
