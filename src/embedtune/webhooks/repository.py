"""Every query of webhooks and their deliveries; each delivery move is one guarded UPDATE."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from embedtune.core.db import utcnow
from embedtune.webhooks.tables import Webhook, WebhookDelivery

_INSERT_DELIVERIES = insert(cast(Table, WebhookDelivery.__table__))


def add(session: Session, webhook: Webhook) -> None:
    session.add(webhook)


def get(session: Session, webhook_id: str) -> Webhook | None:
    return session.get(Webhook, webhook_id)


def list_all(session: Session) -> list[Webhook]:
    return list(session.scalars(select(Webhook).order_by(Webhook.created_at, Webhook.id)))


def remove(session: Session, webhook_id: str) -> bool:
    result = cast(
        CursorResult[Any], session.execute(delete(Webhook).where(Webhook.id == webhook_id))
    )
    return result.rowcount == 1


def subscribed_to(session: Session, event_type: str) -> list[str]:
    """Ids of the webhooks that want ``event_type`` (few rows: filtered here)."""
    rows = session.execute(select(Webhook.id, Webhook.events))
    return [webhook_id for webhook_id, events in rows if event_type in events]


def insert_deliveries(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        session.connection().execute(_INSERT_DELIVERIES, list(rows))


def list_deliveries(session: Session, webhook_id: str, limit: int) -> list[WebhookDelivery]:
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def _due(now: datetime) -> Any:
    return (
        WebhookDelivery.status == "pending",
        WebhookDelivery.next_attempt_at <= now,
        or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
    )


def list_due(session: Session, now: datetime, limit: int) -> list[int]:
    query = (
        select(WebhookDelivery.id)
        .where(*_due(now))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def claim(session: Session, delivery_id: int, now: datetime, lease_until: datetime) -> bool:
    """Takes a due delivery for one attempt; False if another worker has it."""
    statement = (
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, *_due(now))
        .values(lease_until=lease_until, attempts=WebhookDelivery.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount == 1


def load_for_sending(session: Session, delivery_id: int) -> tuple[WebhookDelivery, Webhook] | None:
    row = session.execute(
        select(WebhookDelivery, Webhook)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.id == delivery_id)
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def record_attempt(
    session: Session,
    delivery_id: int,
    *,
    status: str,
    status_code: int | None,
    error: str | None,
    next_attempt_at: datetime | None,
) -> None:
    """The outcome of the attempt just made: delivered, failed, or pending again."""
    values: dict[str, Any] = {
        "status": status,
        "last_status_code": status_code,
        "last_error": error[:1024] if error else None,
        "lease_until": None,
    }
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if status != "pending":
        values["finished_at"] = utcnow()
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
