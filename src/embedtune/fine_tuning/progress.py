"""What a running training tells its stream, in the order it happened: progress samples at
most every ``PROGRESS_INTERVAL_S`` (the latest one wins, and the last one of a run is always
written), evaluations and checkpoints as they come, and an estimated finish from the step
rate measured in this run."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from embedtune.core.db import utcnow
from embedtune.fine_tuning.states import EventKind

#: At most four progress events a second per training.
PROGRESS_INTERVAL_S = 0.25


class ProgressJournal:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[EventKind, dict[str, Any]]] = []
        self._fraction: float | None = None
        self._state: dict[str, Any] | None = None
        self._first: tuple[float, int] | None = None
        self._last_take = 0.0

    def progress(self, fraction: float, position: dict[str, Any]) -> None:
        """A new position; ``position`` holds step, total_steps, epoch, loss, … (no None).

        A final ``fraction`` of 1.0 without a step reads as the last step (``step =
        total_steps``), so a finished run never shows ``11 / 12``.
        """
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.monotonic()
        with self._lock:
            state = dict(position)
            if "step" not in state and self._state is not None:
                state = {**self._state, **state}
                if fraction >= 1.0 and "total_steps" in state:
                    state["step"] = state["total_steps"]
            state.pop("estimated_finish_at", None)
            finish = self._estimate_finish(now, state)
            if finish is not None:
                state["estimated_finish_at"] = finish
            self._fraction, self._state = fraction, state
            sample = (EventKind.progress, {"progress": fraction, **state})
            if self._events and self._events[-1][0] is EventKind.progress:
                self._events[-1] = sample  # not written yet: the newer sample replaces it
            else:
                self._events.append(sample)

    def _estimate_finish(self, now: float, state: dict[str, Any]) -> str | None:
        step, total = state.get("step"), state.get("total_steps")
        if not isinstance(step, int) or not isinstance(total, int):
            return None
        if self._first is None or step < self._first[1]:
            self._first = (now, step)
            return None
        first_time, first_step = self._first
        if step == first_step or now <= first_time:
            return None
        rate = (step - first_step) / (now - first_time)
        return (utcnow() + timedelta(seconds=max(total - step, 0) / rate)).isoformat()

    def add(self, kind: EventKind, detail: dict[str, Any]) -> None:
        with self._lock:
            self._events.append((kind, detail))

    def due(self) -> bool:
        """Whether there is something to write now without exceeding the rate."""
        with self._lock:
            if not self._events:
                return False
            only_progress = all(kind is EventKind.progress for kind, _ in self._events)
            return not only_progress or time.monotonic() - self._last_take >= PROGRESS_INTERVAL_S

    def take(self) -> tuple[float | None, dict[str, Any] | None, list[tuple[EventKind, Any]]]:
        """The current position and the events not written yet (now taken)."""
        with self._lock:
            events, self._events = self._events, []
            self._last_take = time.monotonic()
            return self._fraction, self._state, events
