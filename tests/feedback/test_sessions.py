"""Collecting search sessions: stored once, validated, later clicks, listing and summary."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from conftest import both_databases

from .helpers import post_session, release, session_body


@both_databases
def test_a_session_is_stored_once_and_a_replay_with_another_body_is_refused(
    app_client: TestClient,
) -> None:
    body = session_body("s1", "reset password", ["a", "b", "c"], ["b"], user_id="u1")
    stored = post_session(app_client, body)
    assert stored["results"] == [
        {"id": "a", "rank": 1},
        {"id": "b", "rank": 2},
        {"id": "c", "rank": 3},
    ]
    assert (stored["clicks"], stored["irrelevant"], stored["release_id"]) == (["b"], False, None)
    assert post_session(app_client, body, status=200) == stored
    changed = post_session(app_client, {**body, "clicks": ["a"]}, status=422)
    assert changed["code"] == "session_id_reused"
    assert app_client.get("/feedback/sessions/s1").json() == stored


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"clicks": ["zz"]}, "unknown_result"),
        ({"query": "   "}, "validation_error"),
        ({"results": []}, "validation_error"),
        ({"results": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}, "duplicate_result"),
        ({"results": [{"id": "never-seen"}]}, "document_text_required"),
        ({"query": "nul \x00 inside"}, "validation_error"),
        ({"metadata": {"nested": ["nul \x00"]}}, "validation_error"),
        ({"session_id": ""}, "validation_error"),
        ({"unknown_field": 1}, "validation_error"),
    ],
)
def test_bad_sessions_are_422_and_store_nothing(
    app_client: TestClient, change: dict[str, object], code: str
) -> None:
    body = {**session_body("bad", "query", ["a"]), **change}
    assert post_session(app_client, body, status=422)["code"] == code
    assert app_client.get("/feedback/sessions").headers["x-total-count"] == "0"


@both_databases
def test_a_taken_id_is_judged_before_missing_texts_and_an_unpaired_surrogate_is_422(
    app_client: TestClient,
) -> None:
    body = session_body("s1", "q", ["a"])
    post_session(app_client, body)
    textless = {**body, "results": [{"id": "never-seen"}]}
    assert post_session(app_client, textless, status=422)["code"] == "session_id_reused"
    surrogate = session_body("s2", "q", ["b"])
    surrogate["results"][0]["text"] = "\ud800"
    response = app_client.post(
        "/feedback/sessions",
        content=json.dumps(surrogate),
        headers={"content-type": "application/json"},
    )
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert app_client.get("/feedback/sessions").headers["x-total-count"] == "1"


@pytest.mark.parametrize("metadata", [{"text": "unpaired \ud800"}, {"unpaired \udc00": 1}])
def test_an_unpaired_surrogate_in_metadata_is_422(
    app_client: TestClient, metadata: dict[str, object]
) -> None:
    body = {**session_body("s1", "q", ["a"]), "metadata": metadata}
    response = app_client.post(
        "/feedback/sessions",
        content=json.dumps(body),  # ASCII escapes: the JSON itself is valid
        headers={"content-type": "application/json"},
    )
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert app_client.get("/feedback/sessions").headers["x-total-count"] == "0"


def test_a_text_that_spells_a_nul_escape_is_stored(app_client: TestClient) -> None:
    body = session_body("s1", r"what does \u0000 mean", ["a"], metadata={"k": r"\u0000"})
    assert post_session(app_client, body)["query"] == r"what does \u0000 mean"


def test_a_known_document_needs_no_text_and_a_later_click_is_recorded_once(
    app_client: TestClient,
) -> None:
    post_session(app_client, session_body("s1", "q", ["a", "b"]))
    later = {"session_id": "s2", "query": "q", "results": [{"id": "b"}, {"id": "a"}]}
    assert post_session(app_client, later)["clicks"] == []
    for _ in range(2):
        response = app_client.post("/feedback/sessions/s2/clicks", json={"result_id": "a"})
        assert response.status_code == 200, response.text
    assert response.json()["clicks"] == ["a"]
    assert app_client.get("/feedback").json()["clicks"] == 1
    unknown = app_client.post("/feedback/sessions/s2/clicks", json={"result_id": "zz"})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_result")
    missing = app_client.post("/feedback/sessions/nope/clicks", json={"result_id": "a"})
    assert (missing.status_code, missing.json()["code"]) == (404, "session_not_found")


def test_a_released_session_takes_no_more_clicks(app_client: TestClient) -> None:
    post_session(app_client, session_body("s1", "q", ["a", "b"], ["a"]))
    release(app_client, "r1")
    click = app_client.post("/feedback/sessions/s1/clicks", json={"result_id": "b"})
    assert (click.status_code, click.json()["code"]) == (409, "session_released")
    irrelevant = app_client.put("/feedback/sessions/s1/irrelevant")
    assert (irrelevant.status_code, irrelevant.json()["code"]) == (409, "session_released")
    assert app_client.get("/feedback/sessions/s1").json()["release_id"] == "r1"


@both_databases
def test_bulk_upload_stores_good_lines_lists_bad_ones_and_a_replay_stores_nothing(
    app_client: TestClient,
) -> None:
    lines = [
        json.dumps(session_body("b1", "first", ["d1", "d2"], ["d2"])),
        "{not json",
        "",
        # d1 was seen on line 1: no text needed.
        json.dumps({"session_id": "b2", "query": "second", "results": [{"id": "d1"}]}),
        json.dumps({"session_id": "b3", "query": "third", "results": [{"id": "unseen"}]}),
        json.dumps(session_body("b4", "fourth", ["d3"], ["d9"])),
        json.dumps(session_body("b1", "first", ["d1", "d2"], ["d1"])),
    ]
    content = ("\n".join(lines) + "\n").encode()
    first = app_client.post("/feedback/sessions/bulk", files={"file": ("log.ndjson", content)})
    assert first.status_code == 200, first.text
    answer = first.json()
    assert (answer["accepted"], answer["duplicates"]) == (2, 0)
    assert [entry["line"] for entry in answer["rejected"]] == [2, 5, 6, 7]
    assert "need a text" in answer["rejected"][1]["detail"]
    assert "different body" in answer["rejected"][3]["detail"]

    replay = app_client.post(
        "/feedback/sessions/bulk",
        content=content,
        headers={"Content-Type": "application/x-ndjson"},
    ).json()
    assert (replay["accepted"], replay["duplicates"], len(replay["rejected"])) == (0, 2, 4)
    assert app_client.get("/feedback/sessions").headers["x-total-count"] == "2"
    wrong = app_client.post("/feedback/sessions/bulk", content=content)
    assert (wrong.status_code, wrong.json()["code"]) == (415, "unsupported_media_type")


def test_sessions_are_listed_newest_first_and_the_summary_counts_the_unreleased(
    app_client: TestClient,
) -> None:
    post_session(app_client, session_body("s1", "Reset  password", ["a", "b", "c"], ["c"]))
    post_session(app_client, session_body("s2", "reset password", ["a", "b"], ["a", "b"]))
    post_session(app_client, session_body("s3", "refunds", ["d"]))
    page = app_client.get("/feedback/sessions", params={"limit": 2})
    assert [s["session_id"] for s in page.json()] == ["s3", "s2"]
    assert page.headers["x-total-count"] == "3"
    assert app_client.get("/feedback").json() == {
        "sessions": 3,
        "sessions_with_clicks": 2,
        "irrelevant_sessions": 0,
        "clicks": 3,
        "distinct_queries": 2,
        "distinct_documents": 4,
        "click_through_rate": pytest.approx(2 / 3),
        "mean_first_click_rank": 2.0,
    }
    release(app_client)
    assert app_client.get("/feedback").json()["sessions"] == 0
