"""Every query of the deployments feature. The blue switch is one guarded UPDATE of the slot."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Table, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from embedtune.core.db import utcnow
from embedtune.deployments.tables import (
    BLUE,
    Deployment,
    DeploymentSlot,
    DeploymentWait,
    ModelExport,
)


def _rowcount(session: Session, statement: Any) -> int:
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount


def _unheld(expires_at: Any) -> ColumnElement[bool]:
    """Never taken, or taken by a holder whose time ran out."""
    return or_(expires_at.is_(None), expires_at < utcnow())


def get_blue(session: Session) -> DeploymentSlot | None:
    return session.get(DeploymentSlot, BLUE, populate_existing=True)


def insert_initial_blue(session: Session, model_id: str) -> None:
    """Makes ``model_id`` blue when nothing is; flushes, so a concurrent start that won the
    race raises ``IntegrityError`` here."""
    now = utcnow()
    session.add(DeploymentSlot(name=BLUE, model_id=model_id, version=1, since=now))
    session.add(Deployment(model_id=model_id, since=now, reason="initial"))
    session.flush()


def take_lock(session: Session, token: str, expires_at: datetime) -> bool:
    """Marks a deployment in progress; False when another one holds an unexpired lock."""
    statement = (
        update(DeploymentSlot)
        .where(DeploymentSlot.name == BLUE, _unheld(DeploymentSlot.lock_expires_at))
        .values(lock_token=token, lock_expires_at=expires_at)
    )
    return _rowcount(session, statement) == 1


def release_lock(session: Session, token: str) -> None:
    statement = (
        update(DeploymentSlot)
        .where(DeploymentSlot.name == BLUE, DeploymentSlot.lock_token == token)
        .values(lock_token=None, lock_expires_at=None)
    )
    session.execute(statement)


def lock_is_free(session: Session) -> bool:
    query = select(DeploymentSlot.name).where(
        DeploymentSlot.name == BLUE, _unheld(DeploymentSlot.lock_expires_at)
    )
    return session.scalar(query) is not None


def switch_blue(
    session: Session, token: str, model_id: str, reason: str, task_id: str | None
) -> bool:
    """Makes ``model_id`` blue and releases the lock, only for the holder of ``token``.

    Closes the current history period and opens a new one in the caller's transaction.
    """
    now = utcnow()
    statement = (
        update(DeploymentSlot)
        .where(DeploymentSlot.name == BLUE, DeploymentSlot.lock_token == token)
        .values(
            model_id=model_id,
            version=DeploymentSlot.version + 1,
            since=now,
            lock_token=None,
            lock_expires_at=None,
        )
    )
    if _rowcount(session, statement) != 1:
        return False
    session.execute(update(Deployment).where(Deployment.until.is_(None)).values(until=now))
    session.add(Deployment(model_id=model_id, since=now, reason=reason, task_id=task_id))
    session.flush()
    return True


def list_history(session: Session, limit: int) -> list[Deployment]:
    """The latest ``limit`` blue periods, the current one first."""
    query = select(Deployment).order_by(Deployment.id.desc()).limit(limit)
    return list(session.scalars(query))


def previous_blue(session: Session) -> Deployment | None:
    """The period before the current one."""
    query = select(Deployment).order_by(Deployment.id.desc()).offset(1).limit(1)
    return session.scalars(query).one_or_none()


def insert_wait(session: Session, task_id: str, model_id: str, wait_until: datetime) -> None:
    session.add(DeploymentWait(task_id=task_id, model_id=model_id, wait_until=wait_until))
    session.flush()


def list_claimable_waits(session: Session) -> list[DeploymentWait]:
    """Waiting deployments that no live process is deciding, the oldest first."""
    query = (
        select(DeploymentWait)
        .where(_unheld(DeploymentWait.claimed_until))
        .order_by(DeploymentWait.created_at)
    )
    return list(session.scalars(query))


def claim_wait(session: Session, task_id: str, token: str, claimed_until: datetime) -> bool:
    statement = (
        update(DeploymentWait)
        .where(DeploymentWait.task_id == task_id, _unheld(DeploymentWait.claimed_until))
        .values(claim_token=token, claimed_until=claimed_until)
    )
    return _rowcount(session, statement) == 1


def unclaim_wait(session: Session, task_id: str, token: str) -> None:
    statement = (
        update(DeploymentWait)
        .where(DeploymentWait.task_id == task_id, DeploymentWait.claim_token == token)
        .values(claim_token=None, claimed_until=None)
    )
    session.execute(statement)


def delete_claimed_wait(session: Session, task_id: str, token: str) -> bool:
    """Ends a wait this process decided; False if it was canceled meanwhile."""
    statement = delete(DeploymentWait).where(
        DeploymentWait.task_id == task_id, DeploymentWait.claim_token == token
    )
    return _rowcount(session, statement) == 1


def delete_unclaimed_wait(session: Session, task_id: str) -> bool:
    """Ends a wait nobody is deciding right now (a cancel); False if there is none."""
    statement = delete(DeploymentWait).where(
        DeploymentWait.task_id == task_id, _unheld(DeploymentWait.claimed_until)
    )
    return _rowcount(session, statement) == 1


def get_wait(session: Session, task_id: str) -> DeploymentWait | None:
    return session.get(DeploymentWait, task_id, populate_existing=True)


# --- Exports


def get_export(session: Session, model_id: str) -> ModelExport | None:
    return session.get(ModelExport, model_id)


def list_exports(session: Session) -> list[ModelExport]:
    return list(session.scalars(select(ModelExport).order_by(ModelExport.model_id)))


def insert_pending_export(session: Session, model_id: str, status: str = "pending") -> None:
    """Creates the model's export row unless it has one (safe to race)."""
    table = cast(Table, ModelExport.__table__)
    values = {"model_id": model_id, "status": status, "detail": "", "updated_at": utcnow()}
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(table).values(**values).on_conflict_do_nothing())


def claim_export(session: Session, model_id: str, worker: str, stale_before: datetime) -> bool:
    """Takes a pending export, or a running one whose process stopped beating."""
    statement = (
        update(ModelExport)
        .where(
            ModelExport.model_id == model_id,
            or_(
                ModelExport.status == "pending",
                (ModelExport.status == "running") & (ModelExport.heartbeat_at < stale_before),
            ),
        )
        .values(status="running", claimed_by=worker, heartbeat_at=utcnow(), updated_at=utcnow())
    )
    return _rowcount(session, statement) == 1


def finish_export(
    session: Session,
    model_id: str,
    worker: str,
    status: str,
    detail: str,
    directory: str | None,
    quality: dict[str, Any] | None,
) -> bool:
    """Records the outcome of the export ``worker`` holds; False if it lost it meanwhile."""
    statement = (
        update(ModelExport)
        .where(ModelExport.model_id == model_id, ModelExport.claimed_by == worker)
        .where(ModelExport.status == "running")
        .values(
            status=status,
            detail=detail,
            directory=directory,
            quality=quality,
            claimed_by=None,
            updated_at=utcnow(),
        )
    )
    return _rowcount(session, statement) == 1


def list_pending_exports(session: Session, stale_before: datetime) -> list[str]:
    statement = select(ModelExport.model_id).where(
        or_(
            ModelExport.status == "pending",
            (ModelExport.status == "running") & (ModelExport.heartbeat_at < stale_before),
        )
    )
    return list(session.scalars(statement))


def reopen_unneeded_exports(session: Session) -> None:
    """Exports skipped while torch served become pending once another engine is set."""
    session.execute(
        update(ModelExport)
        .where(ModelExport.status == "not_needed")
        .values(status="pending", updated_at=utcnow())
    )
