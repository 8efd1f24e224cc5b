"""HTTP routes of fine-tuning tasks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from embedtune.core.config import Settings, SettingsDep
from embedtune.core.db import SessionDep, transaction, unit_of_work
from embedtune.core.errors import error_responses
from embedtune.core.pagination import TOTAL_COUNT_HEADER, PageDep, set_total
from embedtune.core.path_params import ShortId
from embedtune.core.queue import Dispatcher
from embedtune.fine_tuning import checkpoints, estimates, service
from embedtune.fine_tuning.ports import Deployer
from embedtune.fine_tuning.schemas import (
    CheckpointOut,
    TaskCreate,
    TaskEventOut,
    TaskMetricsOut,
    TaskOut,
)
from embedtune.fine_tuning.states import TaskStatus
from embedtune.fine_tuning.tables import Task
from embedtune.models.schemas import ModelOut

router = APIRouter(prefix="/fine-tuning", tags=["fine-tuning"])


async def _dispatcher(request: Request) -> Dispatcher:
    # async: FastAPI runs a sync dependency on the threadpool.
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]


async def _deployer(request: Request) -> Deployer:
    deployer: Deployer = request.app.state.deployer
    return deployer


DeployerDep = Annotated[Deployer, Depends(_deployer)]


@router.post(
    "/task",
    status_code=201,
    response_model=TaskOut,
    responses={
        200: {"model": TaskOut, "description": "Replay: the task created earlier with this key"},
        **error_responses(404, 413, 422),
    },
)
async def create_task(
    body: TaskCreate,
    session: SessionDep,
    dispatcher: DispatcherDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> TaskOut:
    """Create a fine-tuning task, exactly once per idempotency key."""
    # The busiest route: async, with only the service on a worker thread. A sync endpoint
    # would hop to the threadpool again to validate its response.
    task, created = await run_in_threadpool(
        unit_of_work(service.create_task), session, body, idempotency_key, dispatcher
    )
    response.headers["Location"] = f"/fine-tuning/task/{task.id}"
    if not created:
        response.status_code = 200
    return TaskOut.model_validate(task)


@router.get(
    "/task",
    response_model=list[TaskOut],
    responses={
        200: {"headers": {TOTAL_COUNT_HEADER: {"schema": {"type": "integer"}}}},
        **error_responses(422),
    },
)
def list_tasks(
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
    response: Response,
    status: Annotated[list[TaskStatus] | None, Query(description="Repeatable")] = None,
) -> list[TaskOut]:
    """Tasks, newest first."""
    tasks, total = service.list_tasks(session, status or [], page.offset, page.limit)
    set_total(response, total)
    return _with_estimates(session, tasks, settings)


@router.get("/task/{task_id}", response_model=TaskOut, responses=error_responses(404))
def get_task(task_id: ShortId, session: SessionDep, settings: SettingsDep) -> TaskOut:
    return _with_estimates(session, [service.get_task(session, task_id)], settings)[0]


def _with_estimates(session: Session, tasks: list[Task], settings: Settings) -> list[TaskOut]:
    """The tasks with their queue position and estimates (null where unknown)."""
    found = estimates.estimate(session, tasks, settings)
    return [
        TaskOut.model_validate(task).model_copy(update=found[task.id].as_update())
        if task.id in found
        else TaskOut.model_validate(task)
        for task in tasks
    ]


@router.put("/task/{task_id}/cancel", response_model=TaskOut, responses=error_responses(404, 409))
def cancel_task(
    task_id: ShortId, session: SessionDep, dispatcher: DispatcherDep, deployer: DeployerDep
) -> TaskOut:
    """Cancel a pending or processing task; a canceled one is returned unchanged."""
    with transaction(session):
        task = service.cancel_task(session, task_id, dispatcher, deployer)
    return TaskOut.model_validate(task)


@router.put("/task/{task_id}/restart", response_model=TaskOut, responses=error_responses(404, 409))
def restart_task(task_id: ShortId, session: SessionDep, dispatcher: DispatcherDep) -> TaskOut:
    """Run a failed, canceled or stuck pending task again, from scratch."""
    with transaction(session):
        task = service.restart_task(session, task_id, dispatcher)
    return TaskOut.model_validate(task)


@router.get(
    "/task/{task_id}/events", response_model=list[TaskEventOut], responses=error_responses(404)
)
def list_task_events(task_id: ShortId, session: SessionDep) -> list[TaskEventOut]:
    """The task's history, oldest first."""
    return [TaskEventOut.model_validate(event) for event in service.list_events(session, task_id)]


@router.get(
    "/task/{task_id}/metrics", response_model=TaskMetricsOut, responses=error_responses(404)
)
def get_task_metrics(task_id: ShortId, session: SessionDep) -> TaskMetricsOut:
    """Held-out evaluation before and after training, and the loss curve."""
    task = service.get_task(session, task_id)
    return TaskMetricsOut(task_id=task.id, status=TaskStatus(task.status), metrics=task.metrics)


@router.get(
    "/task/{task_id}/checkpoints",
    response_model=list[CheckpointOut],
    responses=error_responses(404),
)
def list_task_checkpoints(task_id: str, session: SessionDep) -> list[CheckpointOut]:
    """The checkpoints kept from the task's training (the best and the last), oldest first."""
    return checkpoints.list_checkpoints(session, task_id)


@router.post(
    "/task/{task_id}/checkpoints/{name}/register",
    status_code=201,
    response_model=ModelOut,
    responses=error_responses(404),
)
def register_task_checkpoint(task_id: str, name: str, session: SessionDep) -> ModelOut:
    """Register one of the task's checkpoints as a new model."""
    with transaction(session):
        model = checkpoints.register_checkpoint(session, task_id, name)
    return ModelOut.model_validate(model)
