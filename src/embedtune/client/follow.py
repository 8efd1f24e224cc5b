"""What following a task decides, the same for both clients: whether a read of the task
is news, whether it is over, and when a missing stream means "poll instead"."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from embedtune.client.errors import EmbedtuneAPIError, TaskWaitTimeout, no_stream_route
from embedtune.fine_tuning.states import FINISHED

if TYPE_CHECKING:
    from embedtune.fine_tuning.schemas import TaskOut


class Watch:
    """What ``follow`` remembers between two reads of a task."""

    def __init__(self, timeout: float | None):
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.last: tuple[Any, ...] | None = None

    def changed(self, task: TaskOut) -> bool:
        state = (task.status, task.progress, task.training)
        changed, self.last = state != self.last, state
        return changed

    def finished(self, task: TaskOut) -> bool:
        """True once the task has ended; raises ``TaskWaitTimeout`` past the deadline."""
        if task.status in FINISHED:
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise TaskWaitTimeout(f"task {task.id} still {task.status} after {self.timeout}s")
        return False


class WithoutStreams:
    """Ends a task's stream quietly on a server older than streams (``follow`` polls then)."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return isinstance(value, EmbedtuneAPIError) and no_stream_route(value)
