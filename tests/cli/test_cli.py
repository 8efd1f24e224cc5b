"""The ``embedtune`` command against a live server, through Typer's runner."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from embedtune import cli
from live_server import LiveServer, script

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Runs ``embedtune --url <live server> ARGS…``; tables wide enough to keep ids whole."""
    monkeypatch.setattr(cli.out, "width", 200)
    monkeypatch.delenv("EMBEDTUNE_API_KEY", raising=False)
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli.app, ["--url", live_server.url, *args], env=env)

    return run


def _api(live_server: LiveServer, path: str) -> str:
    return httpx.get(live_server.url + path).text


def _failing_task(live_server: LiveServer, model: str, batch: str, **script_options: object) -> str:
    with live_server.client() as client:
        metadata = script(**script_options)  # type: ignore[arg-type]
        return client.tasks.create(model, batch_id=batch, metadata=metadata).id


def test_batch_upload_and_list(invoke: Invoke, live_server: LiveServer, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"query": "a", "positive": "b"}\n{"query": "c", "positive": "d"}\n')
    uploaded = invoke("batch", "upload", str(data), "--name", "pairs")
    listed = invoke("batch", "list")
    as_json = invoke("batch", "list", "--json")
    assert uploaded.exit_code == 0, uploaded.output
    batch_id = uploaded.stdout.split()[0]
    assert "2 examples" in uploaded.stdout
    assert batch_id in listed.stdout and "pairs" in listed.stdout
    assert as_json.stdout == _api(live_server, "/batches?offset=0&limit=50") + "\n"


def test_task_create_follow_runs_to_completion_with_exit_code_0(
    invoke: Invoke, live_model: str, live_batch: str
) -> None:
    metadata = json.dumps(script(steps=4, step_seconds=0.1))
    args = ["--model", live_model, "--batch", live_batch, "--metadata", metadata]
    result = invoke("task", "create", *args, "--follow", "--interval", "0.05")
    assert result.exit_code == 0, result.output
    assert "completed" in result.stdout and "fine-tuned model" in result.stdout
    assert "100%" in result.stdout


def test_task_follow_of_a_failing_task_exits_1(
    invoke: Invoke, live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    task_id = _failing_task(live_server, live_model, live_batch, fail="plugin_error")
    result = invoke("task", "follow", task_id, "--interval", "0.05")
    assert result.exit_code == 1, result.output
    assert "failed" in result.stdout and "scripted_failure" in result.stdout


def test_task_follow_of_a_task_canceled_meanwhile_exits_2(
    invoke: Invoke, live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    task_id = _failing_task(live_server, live_model, live_batch, steps=100, step_seconds=0.1)

    def cancel_soon() -> None:
        time.sleep(0.5)
        with live_server.client() as client:
            client.tasks.cancel(task_id)

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    result = invoke("task", "follow", task_id, "--interval", "0.05")
    canceller.join()
    assert result.exit_code == 2, result.output
    assert "canceled" in result.stdout


def test_task_follow_json_prints_the_final_task(
    invoke: Invoke, live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    task_id = _failing_task(live_server, live_model, live_batch)
    result = invoke("task", "follow", task_id, "--interval", "0.05", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout == _api(live_server, f"/fine-tuning/task/{task_id}") + "\n"


def test_task_list_show_cancel_restart(
    invoke: Invoke, live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    task_id = _failing_task(live_server, live_model, live_batch, steps=100, step_seconds=0.1)
    canceled = invoke("task", "cancel", task_id)
    listed = invoke("task", "list", "--status", "canceled")
    shown = invoke("task", "show", task_id)
    as_json = invoke("task", "list", "--status", "canceled", "--json")
    expected = _api(live_server, "/fine-tuning/task?offset=0&limit=50&status=canceled")
    restarted = invoke("task", "restart", task_id, "--json")
    assert canceled.stdout.strip() == f"{task_id} canceled"
    assert task_id in listed.stdout and "canceled" in listed.stdout
    assert task_id in shown.stdout and "scripted-base" in shown.stdout
    assert as_json.stdout == expected + "\n"
    assert json.loads(restarted.stdout)["status"] in {"pending", "processing"}  # a fast worker
    assert invoke("task", "list", "--status", "completed").stdout.strip() == "No tasks."


def test_api_errors_are_one_line_on_stderr_with_exit_code_1(invoke: Invoke) -> None:
    result = invoke("task", "show", "task_missing")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: task 'task_missing' not found (task_not_found)"
    ]


def test_an_unreachable_server_is_one_line_and_exit_code_1() -> None:
    result = CliRunner().invoke(cli.app, ["--url", "http://127.0.0.1:9", "model", "list"])
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot reach the server" in result.stderr and "Traceback" not in result.output


def test_invalid_metadata_is_a_usage_error(invoke: Invoke, live_model: str) -> None:
    result = invoke("task", "create", "--model", live_model, "--metadata", "[1]")
    assert result.exit_code == 2
    assert "must be a JSON object" in result.stderr


def test_model_list_show_download(invoke: Invoke, live_model: str, tmp_path: Path) -> None:
    listed = invoke("model", "list")
    shown = invoke("model", "show", live_model, "--json")
    downloaded = invoke("model", "download", live_model, "-o", str(tmp_path / "out"))
    assert live_model in listed.stdout and "all-MiniLM-L6-v2" in listed.stdout
    assert json.loads(shown.stdout)["plugin"] == "scripted"
    assert downloaded.exit_code == 0, downloaded.output
    folder = Path(downloaded.stdout.strip())
    assert (folder / "model.txt").read_text() == "base\n"


def test_keys_turn_auth_on_and_a_revoked_key_stops_working(invoke: Invoke) -> None:
    created = invoke("keys", "create", "--name", "ci")
    secret = created.stdout.strip()
    without = invoke("model", "list")
    with_key = invoke("model", "list", env={"EMBEDTUNE_API_KEY": secret})
    listed = invoke("keys", "list", "--json")
    [key] = json.loads(listed.stdout)
    assert created.exit_code == 0 and secret.startswith(key["prefix"])
    assert "not shown again" in created.stderr
    assert without.exit_code == 1 and "missing API key" in without.stderr
    assert with_key.exit_code == 0, with_key.output
    assert invoke("keys", "revoke", key["id"]).exit_code == 0
    deadline = time.monotonic() + 3
    while invoke("model", "list", env={"EMBEDTUNE_API_KEY": secret}).exit_code == 0:
        assert time.monotonic() < deadline, "revoked key still accepted"
        time.sleep(0.1)
    assert json.loads(invoke("keys", "list", "--json").stdout)[0]["revoked_at"] is not None


def test_serve_refuses_to_listen_beyond_this_machine_without_keys(
    settings_env: dict[str, str],
) -> None:
    result = CliRunner().invoke(cli.app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0 without API keys" in result.stderr


def test_embed_prints_a_table_or_the_apis_json(invoke: Invoke) -> None:
    table = invoke("embed", "a cat", "a dog")
    as_json = invoke("embed", "a cat", "--json")
    assert table.exit_code == 0, table.output
    assert "all-MiniLM-L6-v2" in table.stdout
    assert table.stdout.count("384") == 2 and "a dog" in table.stdout
    answer = json.loads(as_json.stdout)
    assert answer["object"] == "list" and len(answer["data"][0]["embedding"]) == 384


def test_task_events_prints_the_history_with_its_progress(
    invoke: Invoke, live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    with live_server.client() as client:
        task = client.tasks.create(live_model, batch_id=live_batch, metadata=script(steps=3))
        client.tasks.wait(task.id, timeout=60)
    result = invoke("task", "events", task.id)
    assert result.exit_code == 0, result.output
    kinds = [line.split()[3] for line in result.stdout.splitlines()[1:] if line.strip()]
    assert kinds[:3] == ["created", "dispatched", "claimed"] and kinds[-1] == "completed"
    assert "progress" in kinds
