"""Rules of fine-tuning tasks at the service layer, without HTTP, on a real SQLite database:
the caller's unit of work commits, and what the queue is asked is sent after the commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from embedtune.batches import service as batches
from embedtune.core.db import new_session, transaction
from embedtune.core.errors import IdempotencyKeyReused, InvalidState
from embedtune.fine_tuning import running, service
from embedtune.fine_tuning.ports import NoDeployments
from embedtune.fine_tuning.schemas import TaskCreate
from embedtune.fine_tuning.states import TaskStatus
from embedtune.migrations import upgrade_database
from embedtune.models import service as models
from embedtune.models.schemas import ModelCreate


@dataclass
class RecordingDispatcher:
    """A ``Dispatcher`` that remembers what it was asked to send."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)

    def dispatch(self, task_id: str, message_id: str) -> None:
        self.sent.append((task_id, message_id))

    def abort(self, run_id: str) -> None:
        self.aborted.append(run_id)


@pytest.fixture
def request_body(settings_env: dict[str, str], tmp_path: Path) -> TaskCreate:
    """A migrated database with a scripted model and a batch; a create request for them."""
    upgrade_database(settings_env["EMBEDTUNE_DATABASE_URL"])
    directory = tmp_path / "scripted-base"
    directory.mkdir()
    (directory / "model.txt").write_text("base\n")
    examples = [{"query": f"q{i}", "positive": f"p{i}"} for i in range(4)]
    with new_session(writer=True) as session, transaction(session):
        models.register_model(
            session,
            ModelCreate(id="scripted-base", name="base", path=str(directory), plugin="scripted"),
        )
        batch = batches.create_from_examples(session, "tiny", examples)
    return TaskCreate(embedding_model_id="scripted-base", batch_id=batch.id)


def _create(
    body: TaskCreate, dispatcher: RecordingDispatcher, key: str | None = None
) -> tuple[str, bool]:
    with new_session(writer=True) as session, transaction(session):
        task, created = service.create_task(session, body, key, dispatcher)
    return task.id, created


def _status(task_id: str) -> str:
    with new_session() as session:
        return service.get_task(session, task_id).status


def _processing(body: TaskCreate, dispatcher: RecordingDispatcher, run_id: str) -> str:
    """A new task, claimed by a worker for run ``run_id``."""
    task_id, _ = _create(body, dispatcher)
    with new_session(writer=True) as session, transaction(session):
        task = service.get_task(session, task_id)
        assert running.claim_task(session, task_id, task.message_id, "worker-1", run_id)
    return task_id


def test_a_create_is_sent_to_the_queue_only_once_its_unit_of_work_commits(
    request_body: TaskCreate,
) -> None:
    dispatcher = RecordingDispatcher()
    with new_session(writer=True) as session, transaction(session):
        task, created = service.create_task(session, request_body, None, dispatcher)
        assert dispatcher.sent == []
    assert created
    assert dispatcher.sent == [(task.id, task.message_id)]
    assert _status(task.id) == TaskStatus.pending


def test_a_create_that_rolls_back_stores_and_sends_nothing(request_body: TaskCreate) -> None:
    dispatcher = RecordingDispatcher()
    with pytest.raises(RuntimeError), new_session(writer=True) as session, transaction(session):
        service.create_task(session, request_body, "key-1", dispatcher)
        raise RuntimeError("the caller failed after the create")
    assert dispatcher.sent == []
    assert _create(request_body, dispatcher, "key-1")[1]  # the key was never taken


def test_a_create_with_the_same_key_and_body_answers_the_first_task(
    request_body: TaskCreate,
) -> None:
    dispatcher = RecordingDispatcher()
    first_id, first_created = _create(request_body, dispatcher, "key-1")
    again_id, again_created = _create(request_body, dispatcher, "key-1")
    assert (first_created, again_created) == (True, False)
    assert again_id == first_id
    assert len(dispatcher.sent) == 1


def test_a_create_with_the_same_key_and_another_body_is_refused(
    request_body: TaskCreate,
) -> None:
    dispatcher = RecordingDispatcher()
    _create(request_body, dispatcher, "key-1")
    other = request_body.model_copy(update={"metadata": {"other": True}})
    with pytest.raises(IdempotencyKeyReused):
        _create(other, dispatcher, "key-1")
    assert len(dispatcher.sent) == 1


def test_cancel_of_a_pending_task_cancels_it_and_aborts_no_run(request_body: TaskCreate) -> None:
    dispatcher = RecordingDispatcher()
    task_id, _ = _create(request_body, dispatcher)
    for _ in range(2):  # a canceled task is answered unchanged
        with new_session(writer=True) as session, transaction(session):
            task = service.cancel_task(session, task_id, dispatcher, NoDeployments())
        assert task.status == TaskStatus.canceled
    assert dispatcher.aborted == []
    assert _status(task_id) == TaskStatus.canceled


def test_cancel_of_a_processing_task_aborts_its_run_after_the_commit(
    request_body: TaskCreate,
) -> None:
    dispatcher = RecordingDispatcher()
    task_id = _processing(request_body, dispatcher, "run-1")
    with new_session(writer=True) as session, transaction(session):
        service.cancel_task(session, task_id, dispatcher, NoDeployments())
        assert dispatcher.aborted == []
    assert dispatcher.aborted == ["run-1"]
    assert _status(task_id) == TaskStatus.canceled


def test_restart_of_a_canceled_task_sends_a_new_message(request_body: TaskCreate) -> None:
    dispatcher = RecordingDispatcher()
    task_id, _ = _create(request_body, dispatcher)
    with new_session(writer=True) as session, transaction(session):
        service.cancel_task(session, task_id, dispatcher, NoDeployments())
    with new_session(writer=True) as session, transaction(session):
        restarted = service.restart_task(session, task_id, dispatcher)
    assert restarted.status == TaskStatus.pending
    assert [sent[0] for sent in dispatcher.sent] == [task_id, task_id]
    assert dispatcher.sent[1] == (task_id, restarted.message_id)
    assert dispatcher.sent[0][1] != restarted.message_id


def test_restart_of_a_processing_task_is_refused_and_sends_nothing(
    request_body: TaskCreate,
) -> None:
    dispatcher = RecordingDispatcher()
    task_id = _processing(request_body, dispatcher, "run-1")
    with pytest.raises(InvalidState), new_session(writer=True) as session, transaction(session):
        service.restart_task(session, task_id, dispatcher)
    assert len(dispatcher.sent) == 1
    assert _status(task_id) == TaskStatus.processing
