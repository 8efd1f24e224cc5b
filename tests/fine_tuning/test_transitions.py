"""Every status move is one guarded UPDATE: allowed moves change the row, others nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from conftest import both_databases
from embedtune.core.db import new_session, utcnow
from embedtune.fine_tuning import repository, transitions
from embedtune.fine_tuning.states import EventKind, TaskStatus
from embedtune.fine_tuning.tables import Task
from embedtune.migrations import upgrade_database
from embedtune.models.tables import EmbeddingModel

MESSAGE = "msg-current"


@pytest.fixture
def session(settings_env: dict[str, str]) -> Iterator[Session]:
    upgrade_database(settings_env["EMBEDTUNE_DATABASE_URL"])
    with new_session(writer=True) as session:
        session.add(EmbeddingModel(id="m", name="m", path="/m", plugin="scripted"))
        session.commit()
        yield session


def _new_task(status: TaskStatus) -> Task:
    now = utcnow()
    return Task(
        id=f"ft-{status.value}-{now.timestamp()}",
        embedding_model_id="m",
        status=status.value,
        metadata_={},
        request_fingerprint="f",
        progress=0.0,
        attempts=0,
        abort_requested=False,
        message_id=MESSAGE,
        heartbeat_at=now,
        created_at=now,
        updated_at=now,
    )


def _task_in(session: Session, status: TaskStatus) -> str:
    task = _new_task(status)
    session.add(task)
    session.commit()
    return task.id


MOVES: dict[str, tuple[Callable[[Session, str], bool], set[TaskStatus], TaskStatus]] = {
    "claim": (
        lambda s, t: transitions.claim(s, t, MESSAGE, "w", "run"),
        {TaskStatus.pending},
        TaskStatus.processing,
    ),
    "complete": (
        lambda s, t: transitions.complete(s, t, MESSAGE, "best", "url", {}),
        {TaskStatus.processing},
        TaskStatus.completed,
    ),
    "fail": (
        lambda s, t: transitions.fail(s, t, MESSAGE, {"code": "x", "message": "y"}),
        {TaskStatus.processing},
        TaskStatus.failed,
    ),
    "cancel": (
        lambda s, t: transitions.cancel(s, t) is not None,
        {TaskStatus.pending, TaskStatus.processing},
        TaskStatus.canceled,
    ),
    "recover": (
        lambda s, t: transitions.return_to_pending(
            s, t, MESSAGE, "msg-new", refund_attempt=False, reason="retry"
        ),
        {TaskStatus.processing},
        TaskStatus.pending,
    ),
    "restart": (
        lambda s, t: transitions.restart(s, t, "msg-new"),
        {TaskStatus.failed, TaskStatus.canceled, TaskStatus.pending},
        TaskStatus.pending,
    ),
}


@both_databases
def test_only_allowed_moves_change_the_row(session: Session) -> None:
    for move, (apply, allowed_from, target) in MOVES.items():
        for start in TaskStatus:
            task_id = _task_in(session, start)
            total = repository.count(session, [])
            moved = apply(session, task_id)
            session.commit()
            task = repository.get(session, task_id)
            assert task is not None
            assert moved is (start in allowed_from), (move, start)
            assert task.status == (target if moved else start).value, (move, start)
            # The per-status counters follow every move.
            counts = repository.counts_by_status(session)
            assert sum(counts.values()) == total == repository.count(session, [])
            actual = {
                s.value: len(repository.list_newest_first(session, [s], 0, 1000))
                for s in TaskStatus
            }
            assert counts == actual, (move, start)


@both_databases
def test_a_message_that_is_not_the_current_one_cannot_claim(session: Session) -> None:
    task_id = _task_in(session, TaskStatus.pending)
    assert not transitions.claim(session, task_id, "msg-stale", "w", "run")
    assert transitions.claim(session, task_id, MESSAGE, "w", "run")
    session.commit()
    # A duplicate of the current message finds the task no longer pending.
    assert not transitions.claim(session, task_id, MESSAGE, "w2", "run2")
    task = repository.get(session, task_id)
    assert task is not None
    assert (task.worker_id, task.attempts) == ("w", 1)


@both_databases
def test_restart_clears_the_outcome_and_replaces_the_message(session: Session) -> None:
    task_id = _task_in(session, TaskStatus.processing)
    transitions.fail(session, task_id, MESSAGE, {"code": "boom", "message": "x"})
    assert transitions.restart(session, task_id, "msg-2")
    session.commit()
    task = repository.get(session, task_id)
    assert task is not None
    assert task.status == "pending"
    assert task.message_id == "msg-2"
    assert task.error is None and task.finished_at is None and task.attempts == 0
    assert not transitions.claim(session, task_id, MESSAGE, "w", "run")


@both_databases
def test_a_new_task_stores_what_it_leaves_unset_as_sql_null(session: Session) -> None:
    task = _new_task(TaskStatus.pending)
    task.heartbeat_at = None
    repository.insert_new(session, task, [(EventKind.created, {})])
    session.commit()
    # SQL NULL, as a flush stores it; not JSON null in the JSON columns.
    stored_null = text(
        "SELECT training_state IS NULL AND metrics IS NULL AND error IS NULL"
        " AND deployment IS NULL AND heartbeat_at IS NULL FROM fine_tuning_task"
        " WHERE id = :id"
    )
    assert session.execute(stored_null, {"id": task.id}).scalar_one()
    assert [event.kind for event in repository.list_events(session, task.id)] == ["created"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_creates_in_flight_do_not_wait_on_each_other_for_the_counters(session: Session) -> None:
    # The status counters are updated at commit, so an open create holds no counter row.
    first = _new_task(TaskStatus.pending)
    second = _new_task(TaskStatus.pending)
    second.id += "-2"
    with new_session(writer=True) as other:
        repository.insert_new(session, first, [])
        other.execute(text("SET LOCAL lock_timeout = '2s'"))
        repository.insert_new(other, second, [])
        other.commit()
    session.commit()
    assert repository.count(session, [TaskStatus.pending]) == 2
