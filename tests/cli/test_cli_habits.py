"""The command's habits: --json anywhere, --fields/--jq, one error style, the commands for
batches, metrics and deployments, training flags, and which database ``keys`` used."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from cli.test_cli import Invoke, invoke
from embedtune import cli
from embedtune.batches import sample
from live_server import LiveServer, script

__all__ = ["invoke"]


def test_json_before_or_after_the_subcommand_prints_the_same(
    invoke: Invoke, live_server: LiveServer, live_batch: str
) -> None:
    before = invoke("--json", "batch", "list")
    after = invoke("batch", "list", "--json")
    assert before.exit_code == after.exit_code == 0, before.output
    assert before.stdout == after.stdout
    assert json.loads(before.stdout)[0]["id"] == live_batch


def test_fields_and_jq_pick_parts_of_the_answer_before_or_after_the_subcommand(
    invoke: Invoke, live_batch: str
) -> None:
    fields = invoke("batch", "list", "--fields", "id,num_examples")
    jq_first = invoke("--jq", ".[0].id", "batch", "list")
    jq_after = invoke("batch", "show", live_batch, "--jq", ".num_examples")
    bad = invoke("batch", "list", "--jq", "id")
    assert json.loads(fields.stdout) == [{"id": live_batch, "num_examples": 4}]
    assert jq_first.stdout == f"{live_batch}\n"  # strings print raw, as gh --jq does
    assert jq_after.stdout == "4\n"
    assert bad.exit_code == 2 and bad.stderr.startswith("error:")


def test_usage_errors_are_one_line_with_exit_code_2_and_no_box(invoke: Invoke) -> None:
    result = invoke("task", "create")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: Missing option '--model'")
    assert "task create --help" in line
    assert "╭" not in result.output and result.stdout == ""


def test_an_unreachable_server_is_named_in_the_error() -> None:
    result = CliRunner().invoke(cli.app, ["--url", "http://127.0.0.1:9", "task", "list"])
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: cannot reach the server at http://127.0.0.1:9")


def test_batch_sample_downloads_the_sample_that_uploads_as_a_batch(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "sample.jsonl"
    downloaded = invoke("batch", "sample", "-o", str(path))
    assert downloaded.exit_code == 0, downloaded.output
    assert path.read_bytes() == sample.read_sample()
    uploaded = invoke("batch", "upload", str(path), "--jq", ".num_examples")
    assert uploaded.stdout.strip() == str(sample.SAMPLE_SIZE)


def test_training_flags_land_under_metadata_training(
    invoke: Invoke, live_model: str, live_batch: str
) -> None:
    metadata = json.dumps({**script(), "training": {"epochs": 3, "warmup_ratio": 0.1}})
    args = ["task", "create", "-m", live_model, "-b", live_batch, "--metadata", metadata]
    flags = ["--epochs", "2", "--learning-rate", "3e-5", "--batch-size", "16", "--max-steps", "4"]
    flags += ["--loss", "mnrl", "--validation-batch", live_batch]
    created = invoke(*args, *flags, "--jq", ".metadata.training")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout) == {
        "epochs": 2.0,
        "warmup_ratio": 0.1,
        "learning_rate": 3e-5,
        "batch_size": 16,
        "max_steps": 4,
        "loss": "mnrl",
        "validation_batch_id": live_batch,
    }


def test_task_metrics_shows_before_and_after(
    invoke: Invoke, live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    from embedtune.core.db import new_session
    from embedtune.fine_tuning.tables import Task

    with live_server.client() as client:
        task = client.tasks.create(live_model, batch_id=live_batch, metadata=script())
        client.tasks.wait(task.id, timeout=30, poll_interval=0.05)
    with new_session(writer=True) as session:
        row = session.get(Task, task.id)
        assert row is not None
        row.metrics = {"before": {"mrr@10": 0.5}, "after": {"mrr@10": 0.625}}
        session.commit()
    table = invoke("task", "metrics", task.id)
    assert table.exit_code == 0, table.output
    [row_text] = [line for line in table.stdout.splitlines() if "mrr@10" in line]
    assert row_text.split() == ["mrr@10", "0.5000", "0.6250", "+0.1250"]
    answer = invoke("task", "metrics", task.id, "--json")
    assert (
        json.loads(answer.stdout)
        == httpx.get(f"{live_server.url}/fine-tuning/task/{task.id}/metrics").json()
    )


def test_deployments_show_switch_and_rollback(invoke: Invoke, live_server: LiveServer) -> None:
    shown = invoke("deployments", "show")
    assert shown.exit_code == 0, shown.output
    assert "blue: all-MiniLM-L6-v2" in shown.stdout
    with live_server.client() as client:
        [model] = [m for m in client.models.list() if m.id == "all-MiniLM-L6-v2"]
    switched = invoke("deployments", "switch", model.id, "--jq", ".blue.model_id")
    assert switched.exit_code == 0, switched.output
    assert switched.stdout.strip() == model.id
    rolled = invoke("deployments", "rollback")
    assert rolled.exit_code in (0, 1)
    missing = invoke("deployments", "switch", "no-such-model")
    assert missing.exit_code == 1 and missing.stderr.startswith("error: ")
    assert "(model_not_found)" in missing.stderr


def test_keys_say_which_database_they_used(invoke: Invoke, settings_env: dict[str, str]) -> None:
    listed = invoke("keys", "list")
    assert listed.exit_code == 0, listed.output
    assert "database: sqlite:///" in listed.stderr
    assert settings_env["EMBEDTUNE_DATABASE_URL"].split("///")[1] in listed.stderr
