"""Blue/green switches: the deployment lock, manual switches and rollback.

Every switch holds the slot's lock (one deployment at a time across all processes), loads
the new model first and then moves the slot in one guarded UPDATE that also releases the
lock.

A switch is several units of work, each committed as its block ends (``separate_unit``), so
its caller holds none: its reads end before the model loads (no transaction, on SQLite no
write lock, meanwhile), and the lock it takes is seen by every process while it loads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy.orm import Session

from embedtune.core.config import Settings
from embedtune.core.db import separate_unit, unit_of_work, utcnow
from embedtune.core.errors import InvalidState
from embedtune.core.ids import new_id
from embedtune.deployments import exports, repository
from embedtune.deployments.inference import BlueRef, Inference
from embedtune.deployments.schemas import BlueOut, BluePeriod, DeploymentsOut
from embedtune.deployments.serving import load_model, servable_model
from embedtune.webhooks import service as webhooks

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 50


class DeploymentInProgress(InvalidState):
    code = "deployment_in_progress"

    def __init__(self) -> None:
        super().__init__("another deployment is in progress; try again when it is done")


@unit_of_work
def get_deployments(session: Session, inference: Inference, settings: Settings) -> DeploymentsOut:
    slot = repository.get_blue(session)
    periods = repository.list_history(session, HISTORY_LIMIT + 1)
    return DeploymentsOut(
        blue=BlueOut(model_id=slot.model_id, since=slot.since) if slot is not None else None,
        history=[
            BluePeriod(model_id=p.model_id, since=p.since, until=p.until)
            for p in periods
            if p.until is not None
        ][:HISTORY_LIMIT],
        loaded=inference.models.loaded_ids(),
        models=exports.list_serving(session, inference, settings),
    )


@contextmanager
def deployment_lock(session: Session, settings: Settings) -> Iterator[str]:
    """Holds the slot's lock meanwhile; raises DeploymentInProgress if another holds it.

    Taking it and releasing it are units of work of their own, committed at once so that
    every process sees the lock during the (long) deployment: the block writes in units
    of its own too, and its caller holds none."""
    token = new_id("lock-")
    expires_at = utcnow() + timedelta(seconds=settings.deploy_lock_timeout)
    with separate_unit(session):
        taken = repository.take_lock(session, token, expires_at)
    if not taken:
        raise DeploymentInProgress()
    try:
        yield token
    finally:
        with separate_unit(session):
            # A no-op after a switch, which released it.
            repository.release_lock(session, token)


def _switch(
    session: Session, inference: Inference, settings: Settings, model_id: str, reason: str
) -> None:
    """Loads ``model_id`` here, then makes it blue (in the database and in this process)."""
    # No transaction (on SQLite: no write lock) while the model loads.
    with separate_unit(session):
        model = servable_model(session, model_id)
        slot = repository.get_blue(session)
    if slot is None:
        load_model(inference, model)
        with separate_unit(session):
            repository.insert_initial_blue(session, model_id)
        return
    if slot.model_id == model_id:
        return
    # Read now: the commits below expire ``slot``, which would then reload the new model.
    before = slot.model_id
    with deployment_lock(session, settings) as token:
        load_model(inference, model)
        with separate_unit(session):
            if not repository.switch_blue(session, token, model_id, reason, task_id=None):
                raise DeploymentInProgress()  # our lock expired and another deployment took it
            notify_changed(session, before, model_id, reason, None)
    with separate_unit(session):
        slot = repository.get_blue(session)
    if slot is not None:
        inference.blue.advance(BlueRef(slot.model_id, slot.version))
    logger.info("blue is now model_id=%s (%s)", model_id, reason)


def set_blue(
    session: Session, inference: Inference, settings: Settings, model_id: str
) -> DeploymentsOut:
    """Makes ``model_id`` blue once it is loaded here (a no-op if it already is), in units
    of work of its own (see the module docstring).

    Raises NotFound (``model_not_found``, ``model_files_missing``), Unprocessable
    (``plugin_unavailable``, ``model_not_servable``) and InvalidState
    (``deployment_in_progress``).
    """
    _switch(session, inference, settings, model_id, "manual")
    return get_deployments(session, inference, settings)


def rollback(session: Session, inference: Inference, settings: Settings) -> DeploymentsOut:
    """Makes the previous blue model blue again, in units of work of its own. Raises
    InvalidState (``no_previous_blue``, ``deployment_in_progress``) and the errors of
    :func:`set_blue`."""
    with separate_unit(session):
        previous = repository.previous_blue(session)
    if previous is None:
        raise InvalidState("there is no previous blue model", code="no_previous_blue")
    _switch(session, inference, settings, previous.model_id, "rollback")
    return get_deployments(session, inference, settings)


def notify_changed(
    session: Session, before: str | None, after: str, reason: str, task_id: str | None
) -> None:
    """A ``deployment.changed`` webhook, committed with the switch."""
    webhooks.enqueue(
        session,
        "deployment.changed",
        {
            "slot": "blue",
            "model_before": before,
            "model_after": after,
            "reason": reason,
            "task_id": task_id,
        },
    )
