"""The rules of webhooks: who may be called, and what is stored for each event.

A delivery is stored in the transaction of the change it reports (so it survives any crash
after that commit) and sent by a queue worker's :class:`~embedtune.webhooks.delivery.Deliverer`.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from embedtune.core.db import unit_of_work, utcnow
from embedtune.core.errors import NotFound, Unprocessable
from embedtune.core.ids import new_id
from embedtune.webhooks import repository
from embedtune.webhooks.addresses import ForbiddenReceiver, check_receiver
from embedtune.webhooks.schemas import WebhookCreate
from embedtune.webhooks.tables import Webhook, WebhookDelivery

#: Set after a commit that stored deliveries: a deliverer in this process sends them at once
#: (deliverers in other processes find them at their next poll).
deliveries_stored = threading.Event()
_STORED = "embedtune_webhook_deliveries_stored"


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_not_found(webhook_id: str) -> NotFound:
    return NotFound(f"webhook {webhook_id!r} not found", code="webhook_not_found")


def create_webhook(
    session: Session, request: WebhookCreate, *, allow_private: bool
) -> tuple[Webhook, str]:
    """Stores a webhook; returns it and its signing secret (``whsec_…``).

    Raises Unprocessable (``webhook_url_forbidden``) for a non-http(s) URL or a private,
    loopback or link-local receiver (unless ``allow_private``).
    """
    try:
        check_receiver(request.url, allow_private=allow_private)
    except ForbiddenReceiver as exc:
        raise Unprocessable(str(exc), code="webhook_url_forbidden") from exc
    secret = _new_secret()
    webhook = Webhook(
        id=new_id("wh-"),
        url=request.url,
        events=list(dict.fromkeys(request.events)),
        description=request.description,
        secret=secret,
        created_at=utcnow(),
    )
    repository.add(session, webhook)
    return webhook, secret


@unit_of_work
def list_webhooks(session: Session) -> list[Webhook]:
    return repository.list_all(session)


def delete_webhook(session: Session, webhook_id: str) -> None:
    """Removes a webhook and its deliveries. Raises NotFound (``webhook_not_found``)."""
    if not repository.remove(session, webhook_id):
        raise webhook_not_found(webhook_id)


@unit_of_work
def list_deliveries(session: Session, webhook_id: str, limit: int) -> list[WebhookDelivery]:
    """Newest first. Raises NotFound (``webhook_not_found``)."""
    if repository.get(session, webhook_id) is None:
        raise webhook_not_found(webhook_id)
    return repository.list_deliveries(session, webhook_id, limit)


def enqueue(session: Session, event_type: str, data: dict[str, Any]) -> None:
    """Stores one delivery of ``event_type`` for every webhook that wants it, in the
    caller's transaction; they are sent once it commits."""
    webhook_ids = repository.subscribed_to(session, event_type)
    if not webhook_ids:
        return
    now = utcnow()
    rows = []
    for webhook_id in webhook_ids:
        body = {"type": event_type, "timestamp": now.isoformat(), "data": data}
        rows.append(
            {
                "message_id": new_id("msg_"),
                "webhook_id": webhook_id,
                "event_type": event_type,
                "payload": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    repository.insert_deliveries(session, rows)
    session.info[_STORED] = True


@event.listens_for(Session, "after_commit")
def _wake_deliverer(session: Session) -> None:
    if session.info.pop(_STORED, False):
        deliveries_stored.set()


@event.listens_for(Session, "after_soft_rollback")
def _forget_stored(session: Session, *_: object) -> None:
    session.info.pop(_STORED, None)
