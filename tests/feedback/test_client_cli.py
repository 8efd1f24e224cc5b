"""The client's ``feedback`` methods and ``embedtune feedback`` against a live server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from embedtune import cli
from embedtune.cli import feedback as cli_feedback
from live_server import LiveServer

from .helpers import session_body


def test_the_client_sends_sessions_clicks_and_releases_them_once(live_server: LiveServer) -> None:
    with live_server.client() as client:
        sent = client.feedback.send(session_body("c1", "where is it", ["a", "b"]))
        assert sent.clicks == []
        assert client.feedback.click("c1", "b").clicks == ["b"]
        client.feedback.send(session_body("c2", "where is it", ["a", "b"], ["a"]))
        assert client.feedback.irrelevant("c2").irrelevant is True
        page = client.feedback.list(limit=1)
        assert ([s.session_id for s in page], page.total) == (["c2"], 2)
        assert client.feedback.summary().sessions_with_clicks == 2
        batch = client.feedback.release("weekly-1")
        assert (batch.source, batch.release_id, batch.num_examples) == ("feedback", "weekly-1", 1)
        assert client.feedback.release("weekly-1") == batch
        assert client.feedback.get("c1").release_id == "weekly-1"


def test_the_cli_uploads_summarizes_and_releases(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMBEDTUNE_API_KEY", raising=False)
    log = tmp_path / "log.ndjson"
    lines = [json.dumps(session_body(f"l{i}", f"query {i}", ["a", "b"], ["b"])) for i in range(3)]
    log.write_text("\n".join([*lines, "{broken"]) + "\n")
    monkeypatch.setattr(cli_feedback.out, "width", 200)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli.app, ["--url", live_server.url, "feedback", *args])
        return result.exit_code, result.output

    code, output = run("upload", str(log))
    assert code == 1 and "3 accepted, 0 duplicate(s)" in output and "line 4:" in output
    code, output = run("summary", "--json")
    assert (code, json.loads(output)["sessions"]) == (0, 3)
    code, output = run("summary")
    assert code == 0 and "100.0%" in output
    code, output = run("release", "--release-id", "r-cli")
    assert code == 0 and "3 examples from 3 sessions and 3 clicks (release r-cli)" in output
    code, output = run("release")
    assert code == 1 and "(no_feedback)" in output
