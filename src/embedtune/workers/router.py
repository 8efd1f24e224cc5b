"""HTTP routes of the worker registry."""

from __future__ import annotations

from fastapi import APIRouter

from embedtune.core.config import SettingsDep
from embedtune.core.db import SessionDep
from embedtune.workers import service
from embedtune.workers.schemas import WorkerOut

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("", response_model=list[WorkerOut])
def list_workers(session: SessionDep, settings: SettingsDep) -> list[WorkerOut]:
    """The live queue workers: where they run, their queue, what they are training now.

    An empty list while tasks are pending means that no worker is running.
    """
    return service.list_live(session, settings)
