"""Helpers of the feedback tests: sessions built from short lists of document ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient


def session_body(
    session_id: str, query: str, shown: list[str], clicks: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """A session showing ``shown`` (each document's text is ``text of <id>``)."""
    return {
        "session_id": session_id,
        "query": query,
        "results": [{"id": doc, "text": f"text of {doc}"} for doc in shown],
        "clicks": clicks or [],
        **extra,
    }


def post_session(client: TestClient, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = client.post("/feedback/sessions", json=body)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def release(client: TestClient, release_id: str | None = None, status: int = 201) -> Any:
    response = client.post("/feedback/release", json={"release_id": release_id})
    assert response.status_code == status, response.text
    return response.json()


def batch_examples(settings_env: dict[str, str], batch_id: str) -> list[dict[str, str]]:
    """The examples of a stored batch, read from the artifact store."""
    root = Path(settings_env["EMBEDTUNE_ARTIFACTS_DIR"])
    [path] = [p for p in root.rglob(f"{batch_id}*") if p.is_file()]
    return [json.loads(line) for line in path.read_text().splitlines()]
