"""A cancel that meets a claim in flight sees the claim: it records the status the task
really had and sends the abort for the run that claimed it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from conftest import wait_until_blocked_on_a_lock
from embedtune.core.config import get_settings
from embedtune.core.db import new_session, transaction, utcnow
from embedtune.deployments.waits import TaskDeployer
from embedtune.fine_tuning import service, transitions
from embedtune.fine_tuning.tables import Task
from embedtune.migrations import upgrade_database
from embedtune.models.tables import EmbeddingModel

MESSAGE = "msg-current"


class RecordingDispatcher:
    """Sends nothing; records what the service asked the queue to do."""

    def __init__(self) -> None:
        self.aborted: list[str] = []

    def dispatch(self, task_id: str, message_id: str) -> None:
        pass

    def abort(self, run_id: str) -> None:
        self.aborted.append(run_id)


@pytest.fixture
def pending_task(settings_env: dict[str, str]) -> Iterator[str]:
    upgrade_database(settings_env["EMBEDTUNE_DATABASE_URL"])
    now = utcnow()
    with new_session(writer=True) as session:
        session.add(EmbeddingModel(id="m", name="m", path="/m", plugin="scripted"))
        session.commit()
        session.add(
            Task(
                id="ft-race",
                embedding_model_id="m",
                status="pending",
                metadata_={},
                request_fingerprint="f",
                progress=0.0,
                attempts=0,
                abort_requested=False,
                message_id=MESSAGE,
                created_at=now,
                updated_at=now,
            )
        )
        session.commit()
    yield "ft-race"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_cancel_racing_a_claim_aborts_the_claimed_run(pending_task: str) -> None:
    dispatcher = RecordingDispatcher()
    result: dict[str, object] = {}
    with new_session(writer=True) as claimer, new_session() as observer:
        assert transitions.claim(claimer, pending_task, MESSAGE, "worker-1", "run-1")

        def cancel() -> None:
            with new_session(writer=True) as session, transaction(session):
                result["task"] = service.cancel_task(
                    session, pending_task, dispatcher, TaskDeployer(get_settings())
                )

        thread = threading.Thread(target=cancel)
        thread.start()
        wait_until_blocked_on_a_lock(observer)
        claimer.commit()
        thread.join(30)
    events = [
        (e.kind, e.detail)
        for e in service.list_events(new_session(), pending_task)
        if e.kind == "canceled"
    ]
    assert events == [("canceled", {"previous_status": "processing"})]
    assert dispatcher.aborted == ["run-1"]
