"""What fine-tuning lets a higher feature do, declared here so that fine_tuning imports none.

``app.py`` and ``worker.py`` wire an implementation at start (deployments' ``TaskDeployer``),
as they wire the queue's ``Dispatcher``.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session


class Deployer(Protocol):
    """The ``deploy_as_blue`` side of a task's life."""

    def after_completion(self, task_id: str) -> None:
        """Decides whether the model of a task that just completed (committed) becomes
        blue. Never raises: a failure is recorded on the task's ``deployment``."""
        ...

    def end_wait(self, session: Session, task_id: str) -> bool:
        """Ends the waiting deployment of a completed task (``canceled``) in the caller's
        unit of work; False if it has none. Raises InvalidState ``deployment_deciding``."""
        ...


class NoDeployments:
    """A ``Deployer`` for processes that deploy nothing (tests of the queue alone)."""

    def after_completion(self, task_id: str) -> None:
        return None

    def end_wait(self, session: Session, task_id: str) -> bool:
        return False
