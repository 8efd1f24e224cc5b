"""A deploy_as_blue task reads completed only together with its deployment state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from conftest import both_databases
from embedtune.core.db import new_session, utcnow
from embedtune.fine_tuning import repository, running
from embedtune.fine_tuning.tables import Task
from embedtune.migrations import upgrade_database
from embedtune.models.tables import EmbeddingModel


@pytest.fixture
def session(settings_env: dict[str, str]) -> Iterator[Session]:
    upgrade_database(settings_env["EMBEDTUNE_DATABASE_URL"])
    with new_session(writer=True) as session:
        session.add(EmbeddingModel(id="m", name="m", path="/m", plugin="scripted"))
        session.commit()
        yield session


def _processing(session: Session, task_id: str, deploy_as_blue: bool) -> Task:
    now = utcnow()
    task = Task(
        id=task_id,
        embedding_model_id="m",
        status="processing",
        metadata_={},
        request_fingerprint="f",
        deploy_as_blue=deploy_as_blue,
        progress=0.5,
        attempts=1,
        abort_requested=False,
        message_id="msg",
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    session.commit()
    return task


@both_databases
def test_completion_of_a_deploy_as_blue_task_records_a_pending_deployment(
    session: Session,
) -> None:
    task = _processing(session, "ft-deploy", deploy_as_blue=True)
    assert running.complete_task(session, task, "ftm-best", "http://x/models/ftm-best", {})
    session.commit()
    # Read by another session, as a polling client would, before any decision is made.
    with new_session() as reader:
        stored = repository.get(reader, task.id)
        assert stored is not None
        assert stored.status == "completed"
        assert stored.deployment is not None
        assert stored.deployment["status"] == "pending"


@both_databases
def test_completion_without_deploy_as_blue_has_no_deployment(session: Session) -> None:
    task = _processing(session, "ft-plain", deploy_as_blue=False)
    assert running.complete_task(session, task, "ftm-best", "http://x/models/ftm-best", {})
    session.commit()
    stored = repository.get(session, task.id)
    assert stored is not None
    assert (stored.status, stored.deployment) == ("completed", None)
