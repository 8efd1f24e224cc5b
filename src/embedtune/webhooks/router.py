"""HTTP routes of webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from embedtune.core.config import SettingsDep
from embedtune.core.db import SessionDep, transaction
from embedtune.core.errors import error_responses
from embedtune.webhooks import service
from embedtune.webhooks.schemas import DeliveryOut, WebhookCreate, WebhookCreated, WebhookOut

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post("", status_code=201, response_model=WebhookCreated, responses=error_responses(422))
def create_webhook(
    body: WebhookCreate, session: SessionDep, settings: SettingsDep
) -> WebhookCreated:
    """Subscribe a URL to events; the answer holds its signing secret, shown only now."""
    with transaction(session):
        webhook, secret = service.create_webhook(
            session, body, allow_private=settings.webhook_allow_private
        )
    return WebhookCreated.model_validate(
        {**WebhookOut.model_validate(webhook).model_dump(), "secret": secret}
    )


@router.get("", response_model=list[WebhookOut])
def list_webhooks(session: SessionDep) -> list[WebhookOut]:
    return [WebhookOut.model_validate(webhook) for webhook in service.list_webhooks(session)]


@router.delete("/{webhook_id}", status_code=204, responses=error_responses(404))
def delete_webhook(webhook_id: str, session: SessionDep) -> Response:
    """Stop sending to a webhook (its pending deliveries are dropped)."""
    with transaction(session):
        service.delete_webhook(session, webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries", response_model=list[DeliveryOut], responses=error_responses(404)
)
def list_deliveries(
    webhook_id: str,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    """The webhook's deliveries, newest first: status, attempts, last response code."""
    deliveries = service.list_deliveries(session, webhook_id, limit)
    return [DeliveryOut.model_validate(delivery) for delivery in deliveries]
