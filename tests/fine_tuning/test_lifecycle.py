"""Cancel, restart and failure through the HTTP API, with the embedded worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from conftest import both_databases, event_kinds, read_log, wait_for_status

SLOW = {"script": {"steps": 600, "step_seconds": 0.05}}


# Cancel of a processing task, on every broker: tests/task_queue/test_cancel.py.


def test_cancel_again_is_200_and_cancel_of_completed_is_409(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]]
) -> None:
    done = create_task()
    wait_for_status(app_client, done["id"])
    response = app_client.put(f"/fine-tuning/task/{done['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"

    pending = create_task(metadata=SLOW)
    first = app_client.put(f"/fine-tuning/task/{pending['id']}/cancel").json()
    second = app_client.put(f"/fine-tuning/task/{pending['id']}/cancel")
    assert second.status_code == 200
    assert second.json() == first


def test_task_canceled_while_pending_is_never_trained(
    app_client: TestClient,
    create_task: Callable[..., dict[str, Any]],
    settings_env: dict[str, str],
) -> None:
    # The single embedded worker thread is busy, so the second task waits in the queue.
    busy = create_task(metadata=SLOW)
    wait_for_status(app_client, busy["id"], {"processing"})
    queued = create_task(metadata={"script": {"steps": 1}})
    app_client.put(f"/fine-tuning/task/{queued['id']}/cancel")
    app_client.put(f"/fine-tuning/task/{busy['id']}/cancel")
    follower = create_task(metadata={"script": {"steps": 1}})
    wait_for_status(app_client, follower["id"])  # the queue drained past the canceled task
    assert len(read_log(settings_env, "trainings.log", queued["id"])) == 0
    assert app_client.get(f"/fine-tuning/task/{queued['id']}").json()["status"] == "canceled"


def test_restart_of_a_stuck_pending_task_trains_it_once(
    app_client: TestClient,
    create_task: Callable[..., dict[str, Any]],
    settings_env: dict[str, str],
) -> None:
    busy = create_task(metadata=SLOW)
    wait_for_status(app_client, busy["id"], {"processing"})
    queued = create_task(metadata={"script": {"steps": 1}})
    restarted = app_client.put(f"/fine-tuning/task/{queued['id']}/restart")
    assert restarted.status_code == 200
    assert restarted.json()["status"] == "pending"
    app_client.put(f"/fine-tuning/task/{busy['id']}/cancel")
    # Both the old and the new message reach the worker; only the current one trains.
    assert wait_for_status(app_client, queued["id"])["status"] == "completed"
    follower = create_task(metadata={"script": {"steps": 1}})
    wait_for_status(app_client, follower["id"])
    assert len(read_log(settings_env, "trainings.log", queued["id"])) == 1


def test_restart_of_processing_or_completed_is_409(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]]
) -> None:
    running = create_task(metadata=SLOW)
    wait_for_status(app_client, running["id"], {"processing"})
    assert app_client.put(f"/fine-tuning/task/{running['id']}/restart").status_code == 409
    app_client.put(f"/fine-tuning/task/{running['id']}/cancel")
    done = create_task()
    wait_for_status(app_client, done["id"])
    response = app_client.put(f"/fine-tuning/task/{done['id']}/restart")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"


@both_databases
def test_create_cancel_restart_walk(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]]
) -> None:
    task = create_task(metadata={"script": {"steps": 400, "step_seconds": 0.02}})
    wait_for_status(app_client, task["id"], {"processing"})
    canceled = app_client.put(f"/fine-tuning/task/{task['id']}/cancel").json()
    assert canceled["status"] == "canceled"
    restarted = app_client.put(f"/fine-tuning/task/{task['id']}/restart").json()
    assert restarted["status"] == "pending"
    assert restarted["progress"] == 0.0
    assert restarted["attempts"] == 0
    assert restarted["started_at"] is restarted["finished_at"] is None
    done = wait_for_status(app_client, task["id"], timeout=60)
    assert done["status"] == "completed"
    assert done["attempts"] == 1
    assert event_kinds(app_client, task["id"]) == [
        "created",
        "dispatched",
        "claimed",
        "canceled",
        "restarted",
        "dispatched",
        "claimed",
        "completed",
    ]


def test_plugin_error_fails_the_task_with_its_code_without_retry(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]]
) -> None:
    task = create_task(metadata={"script": {"fail": "plugin_error"}})
    failed = wait_for_status(app_client, task["id"])
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "scripted_failure", "message": "the script said so"}
    assert failed["attempts"] == 1
    assert failed["finished_at"] is not None


def test_crashing_training_is_retried_until_max_attempts(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]]
) -> None:
    task = create_task(metadata={"script": {"fail": "crash"}})
    failed = wait_for_status(app_client, task["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "training_error"
    assert "scripted crash" in failed["error"]["message"]
    assert failed["attempts"] == 3
    assert event_kinds(app_client, task["id"]).count("claimed") == 3


def test_crash_that_passes_completes_on_retry(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]]
) -> None:
    task = create_task(metadata={"script": {"fail": "crash", "fail_times": 1}})
    done = wait_for_status(app_client, task["id"])
    assert done["status"] == "completed"
    assert done["attempts"] == 2


def test_failed_task_restarts_with_a_fresh_allowance(
    app_client: TestClient, create_task: Callable[..., dict[str, Any]]
) -> None:
    task = create_task(metadata={"script": {"fail": "crash", "fail_times": 3}})
    assert wait_for_status(app_client, task["id"])["status"] == "failed"
    restarted = app_client.put(f"/fine-tuning/task/{task['id']}/restart").json()
    assert (restarted["status"], restarted["error"]) == ("pending", None)
    done = wait_for_status(app_client, task["id"])
    assert done["status"] == "completed"
    assert done["attempts"] == 1


def test_server_restart_loses_no_pending_task(
    settings_env: dict[str, str], create_task: Callable[..., dict[str, Any]], app_client: TestClient
) -> None:
    from embedtune.app import create_app

    running = create_task(metadata=SLOW)
    wait_for_status(app_client, running["id"], {"processing"})
    waiting = create_task(metadata={"script": {"steps": 1}})
    app_client.__exit__(None, None, None)  # the server stops with one running, one queued

    with TestClient(create_app()) as restarted:
        stopped = restarted.get(f"/fine-tuning/task/{running['id']}").json()
        assert "returned" in event_kinds(restarted, running["id"])  # handed back at shutdown
        assert stopped["status"] in {"pending", "processing", "completed"}
        restarted.put(f"/fine-tuning/task/{running['id']}/cancel")
        assert wait_for_status(restarted, waiting["id"])["status"] == "completed"
