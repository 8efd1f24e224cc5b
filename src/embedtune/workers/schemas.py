from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class WorkerOut(BaseModel):
    #: ``host:pid``: the tasks it runs have a ``worker_id`` starting with it.
    id: str
    host: str
    pid: int
    queue: str
    #: Trainings it can run at once.
    slots: int
    current_task_ids: list[str]
    #: The first of ``current_task_ids``, or null when it is idle.
    current_task_id: str | None
    started_at: datetime
    last_heartbeat_at: datetime
