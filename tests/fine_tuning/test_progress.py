"""What a running training records for its stream: a bounded rate of progress samples, the
last one kept, evaluations and checkpoints in order, and a finish estimated from its steps."""

from __future__ import annotations

import time
from datetime import datetime

from embedtune.core.db import utcnow
from embedtune.fine_tuning.progress import PROGRESS_INTERVAL_S, ProgressJournal
from embedtune.fine_tuning.states import EventKind


def test_samples_between_two_writes_collapse_into_the_latest() -> None:
    journal = ProgressJournal()
    journal.take()  # a write just happened
    for step in range(1, 6):
        journal.progress(step / 10, {"step": step, "total_steps": 10, "loss": 1 / step})
    assert not journal.due(), "five samples within the interval must wait"
    time.sleep(PROGRESS_INTERVAL_S)
    assert journal.due()
    fraction, state, events = journal.take()
    assert fraction == 0.5
    assert [kind for kind, _ in events] == [EventKind.progress]
    assert events[0][1]["step"] == 5 and events[0][1]["progress"] == 0.5
    assert state is not None and state["step"] == 5


def test_evaluations_and_checkpoints_are_due_at_once_and_keep_their_order() -> None:
    journal = ProgressJournal()
    journal.take()
    journal.progress(0.1, {"step": 1, "total_steps": 10})
    journal.add(EventKind.evaluated, {"metrics": {"mrr@10": 0.5}, "step": 1})
    journal.progress(0.2, {"step": 2, "total_steps": 10})
    journal.add(EventKind.checkpoint_saved, {"step": 2})
    assert journal.due()
    kinds = [kind for kind, _ in journal.take()[2]]
    assert kinds == [
        EventKind.progress,
        EventKind.evaluated,
        EventKind.progress,
        EventKind.checkpoint_saved,
    ]


def test_finish_is_estimated_from_the_step_rate_and_a_final_fraction_reads_the_last_step() -> None:
    journal = ProgressJournal()
    journal.progress(0.1, {"step": 1, "total_steps": 11})
    assert "estimated_finish_at" not in (journal.take()[1] or {}), "one step gives no rate"
    time.sleep(0.2)
    journal.progress(0.2, {"step": 2, "total_steps": 11})
    state = journal.take()[1] or {}
    finish = datetime.fromisoformat(state["estimated_finish_at"])
    remaining = (finish - utcnow()).total_seconds()
    assert 1.0 < remaining < 4.0  # 9 steps left at about 0.2 s each
    journal.progress(1.0, {})
    state = journal.take()[1] or {}
    assert state["step"] == state["total_steps"] == 11
