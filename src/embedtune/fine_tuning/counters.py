"""The event counters behind ``/metrics``: one row per figure, moved by the same
transaction that records the event it counts (see ``repository.add_event``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from embedtune.fine_tuning.states import EventKind
from embedtune.fine_tuning.tables import EventCounter

#: Seconds from a task's dispatch (creation, retry, recovery) to a worker's claim.
DISPATCH_LATENCY_BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CLAIMS = "task_claims"
RECOVERIES = "task_recoveries"
CANCELS = "task_cancels"
LATENCY_COUNT = "dispatch_latency_count"
LATENCY_SUM = "dispatch_latency_sum"
#: The counter each counted event kind moves.
COUNTED_KINDS = {
    EventKind.claimed: CLAIMS,
    EventKind.heartbeat_lost: RECOVERIES,
    EventKind.canceled: CANCELS,
}


def bucket(bound: float) -> str:
    """The counter of claims whose queue latency was at most ``bound`` seconds."""
    return f"dispatch_latency_le_{bound}"


#: Every counter row; the migration that made the table created them all.
NAMES = (
    CLAIMS,
    RECOVERIES,
    CANCELS,
    LATENCY_COUNT,
    LATENCY_SUM,
    *(bucket(b) for b in DISPATCH_LATENCY_BOUNDS),
)


def count_event(session: Session, kind: EventKind, detail: dict[str, Any]) -> None:
    """Moves the counters of one recorded event, in the caller's transaction."""
    name = COUNTED_KINDS.get(kind)
    if name is None:
        return
    names = [name]
    latency = detail.get("queue_latency_s") if kind == EventKind.claimed else None
    if isinstance(latency, int | float):
        names += [LATENCY_COUNT, LATENCY_SUM]
        names += [bucket(b) for b in DISPATCH_LATENCY_BOUNDS if latency <= b]
    amount = case((EventCounter.name == LATENCY_SUM, float(latency or 0.0)), else_=1.0)
    session.execute(
        update(EventCounter)
        .where(EventCounter.name.in_(names))
        .values(value=EventCounter.value + amount)
        .execution_options(synchronize_session=False)
    )


def read_all(session: Session) -> dict[str, float]:
    """Every counter by name."""
    return {
        name: float(value)
        for name, value in session.execute(select(EventCounter.name, EventCounter.value))
    }
