"""Releasing feedback into batches: the pair rules, exactly-once releases, tasks without a
batch, and concurrent sessions and releases on PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import both_databases
from embedtune.batches import service as batches
from embedtune.core.db import new_session, transaction
from embedtune.core.errors import Unprocessable
from embedtune.feedback import ingest, service
from embedtune.feedback.pairs import ShownSession, build_pairs
from embedtune.feedback.schemas import SessionIn
from embedtune.migrations import upgrade_database

from .helpers import batch_examples, post_session, release, session_body


def test_pairs_follow_the_skip_above_rules(
    app_client: TestClient, settings_env: dict[str, str]
) -> None:
    # Released first: p clicked for q4 in an earlier release is never a negative for q4.
    post_session(app_client, session_body("s0", "q4", ["p"], ["p"]))
    release(app_client, "r0")
    post_session(app_client, session_body("s1", "q1", ["a", "b", "c", "d", "e"], ["c"]))
    post_session(app_client, session_body("s2", "q1", ["b", "c", "a"], ["b"]))
    # Same query (case and spaces differ); a new text for c replaces the old one.
    s3 = {"session_id": "s3", "query": " Q1 ", "clicks": ["c"]}
    s3["results"] = [{"id": "a"}, {"id": "c", "text": "new text of c"}]
    post_session(app_client, s3)
    post_session(app_client, session_body("s4", "q2", ["x", "y"]))
    post_session(app_client, session_body("s5", "q3", ["m", "n"], ["n"]))
    assert app_client.put("/feedback/sessions/s5/irrelevant").json()["irrelevant"] is True
    post_session(app_client, session_body("s6", "q4", ["p", "r", "t", "u"], ["t"]))

    batch = release(app_client, "r1")
    assert {key: batch[key] for key in ("source", "release_id", "num_sessions", "num_clicks")} == {
        "source": "feedback",
        "release_id": "r1",
        "num_sessions": 6,
        "num_clicks": 5,
    }
    assert batch_examples(settings_env, batch["id"]) == [
        # c: support 2 (s1, s3); a skipped above it in both; b clicked for q1 in s2.
        {"query": "q1", "positive": "new text of c", "negative": "text of a"},
        {"query": "q1", "positive": "text of b"},
        # u is below the last click: not a negative.
        {"query": "q4", "positive": "text of t", "negative": "text of r"},
    ]
    assert app_client.get(f"/batches/{batch['id']}").json() == batch


def test_identical_pairs_are_one_example_with_their_support() -> None:
    sessions = [
        ShownSession("k", "q", {1: "a", 2: "b"}, frozenset({"b"})),
        ShownSession("k", "q", {1: "c", 2: "b"}, frozenset({"b"})),
        ShownSession("k", "q", {1: "a", 2: "c", 3: "b"}, frozenset({"b"})),
    ]
    [pair] = build_pairs(sessions, {"k": {"b"}})
    assert (pair.document_id, pair.support) == ("b", 3)
    assert pair.negatives == Counter({"a": 2, "c": 2})
    assert pair.hard_negative() == "a"  # as often as c, and shown higher


@both_databases
def test_a_release_is_made_once_and_later_sessions_go_to_the_next(
    app_client: TestClient,
) -> None:
    assert release(app_client, status=422)["code"] == "no_feedback"
    post_session(app_client, session_body("s1", "no click", ["a"]))
    assert release(app_client, "r1", status=422)["code"] == "no_feedback"
    assert app_client.get("/feedback").json()["sessions"] == 1  # still collected
    post_session(app_client, session_body("s2", "q", ["a", "b"], ["b"]))
    first = release(app_client, "r1")
    assert (first["num_sessions"], first["num_examples"]) == (2, 1)
    assert release(app_client, "r1", status=200) == first
    post_session(app_client, session_body("s3", "q", ["b", "c"], ["c"]))
    second = release(app_client)
    assert second["id"] != first["id"]
    assert (second["num_sessions"], second["num_clicks"]) == (1, 1)
    assert second["release_id"].startswith("release-")


@both_databases
def test_a_task_without_batch_trains_on_feedback_released_with_its_key(
    app_client: TestClient, scripted_model: str
) -> None:
    def create(key: str | None) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        body = {"embedding_model_id": scripted_model}
        return app_client.post("/fine-tuning/task", json=body, headers=headers)

    refused = create("k1")
    assert (refused.status_code, refused.json()["code"]) == (422, "no_feedback")
    assert app_client.get("/fine-tuning/task").headers["x-total-count"] == "0"

    post_session(app_client, session_body("s1", "q", ["a", "b"], ["b"]))
    created = create("k1")
    assert created.status_code == 201, created.text
    task = created.json()
    batch = app_client.get(f"/batches/{task['batch_id']}").json()
    assert (batch["source"], batch["release_id"], batch["num_sessions"]) == ("feedback", "k1", 1)
    replay = create("k1")
    assert (replay.status_code, replay.json()["id"], replay.json()["batch_id"]) == (
        200,
        task["id"],
        task["batch_id"],
    )
    assert create(None).json()["code"] == "no_feedback"

    post_session(app_client, session_body("s2", "q2", ["c"], ["c"]))
    unkeyed = create(None).json()
    assert app_client.get(f"/batches/{unkeyed['batch_id']}").json()["release_id"] == unkeyed["id"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_sessions_and_releases_lose_none_and_use_none_twice(
    settings_env: dict[str, str],
) -> None:
    upgrade_database(settings_env["EMBEDTUNE_DATABASE_URL"])
    writers, per_writer = 4, 40
    writing = threading.Event()
    errors: list[BaseException] = []
    released: list[str] = []

    def write(worker: int) -> None:
        try:
            for index in range(per_writer):
                name = f"w{worker}-{index}"
                body = SessionIn.model_validate(session_body(name, name, ["shared", name], [name]))
                with new_session(writer=True) as session, transaction(session):
                    ingest.create_session(session, body)
        except BaseException as exc:
            errors.append(exc)

    def release_while_writing() -> None:
        try:
            while writing.is_set():
                try:
                    with new_session(writer=True) as session, transaction(session):
                        released.append(service.release(session, None)[0].id)
                except Unprocessable as exc:
                    assert exc.code == "no_feedback"
        except BaseException as exc:
            errors.append(exc)

    writing.set()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    releasers = [threading.Thread(target=release_while_writing) for _ in range(3)]
    for thread in threads + releasers:
        thread.start()
    for thread in threads:
        thread.join(120)
    writing.clear()
    for thread in releasers:
        thread.join(120)
    # The last release takes what is left, unless the releasers took everything.
    with (
        contextlib.suppress(Unprocessable),
        new_session(writer=True) as session,
        transaction(session),
    ):
        released.append(service.release(session, None)[0].id)
    assert errors == []
    assert len(released) >= 2, "the releases did not overlap the writes"

    queries: list[str] = []
    with new_session() as session:
        for batch_id in released:
            batch = batches.get_batch(session, batch_id)
            examples = [json.loads(line) for line in Path(batch.path).read_text().splitlines()]
            assert batch.num_sessions == batch.num_examples == len(examples)
            queries += [example["query"] for example in examples]
        assert service.summary(session).sessions == 0
    everyone = [f"w{w}-{i}" for w in range(writers) for i in range(per_writer)]
    assert sorted(queries) == sorted(everyone)


def test_a_plugin_that_needs_no_batch_releases_no_feedback(
    app_client: TestClient, tmp_path: Path
) -> None:
    directory = tmp_path / "batchless"
    directory.mkdir()
    (directory / "model.txt").write_text("base\n")
    model = {"id": "batchless", "name": "b", "path": str(directory), "plugin": "batchless"}
    assert app_client.post("/models", json=model).status_code == 201
    post_session(app_client, session_body("s1", "q", ["a"], ["a"]))
    created = app_client.post("/fine-tuning/task", json={"embedding_model_id": "batchless"})
    assert (created.status_code, created.json()["batch_id"]) == (201, None)
    assert app_client.get("/feedback").json()["sessions"] == 1
