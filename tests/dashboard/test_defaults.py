"""The dashboard's defaults and the pages it gained: new-task form, cancel, task and model
pages, the models table and the favicon (real headless Chromium; screenshots in
tests/artifacts/)."""

from __future__ import annotations

import re

from playwright.sync_api import Dialog, Page, Route, expect

from dashboard.test_dashboard import _shot, browser, page
from embedtune.core.db import new_session
from embedtune.fine_tuning.tables import Task
from live_server import LiveServer, script

__all__ = ["browser", "page"]

BUNDLED = "all-MiniLM-L6-v2"


def test_new_task_form_defaults_to_the_blue_model_and_the_newest_batch(
    page: Page, live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    with live_server.client() as client:  # newer than the bundled model and the first batch
        newest = client.batches.create([{"query": "a", "positive": "b"}], name="newest").id
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(f"{live_server.url}/#/tasks")
    expect(page.get_by_label("Base model")).to_have_value(BUNDLED)
    expect(page.get_by_label("Training batch")).to_have_value(newest)
    options = page.get_by_label("Options (JSON, optional)")
    assert '{"training": {"epochs"' in (options.get_attribute("placeholder") or "")
    expect(page.locator(".new-task .hint")).to_contain_text("validation_batch_id")
    _shot(page, "new-task-form")
    assert page.request.get(f"{live_server.url}/favicon.ico").status == 200
    assert missing == []


def test_new_task_form_defaults_to_collected_feedback_when_some_is_waiting(
    page: Page, live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    results = [{"id": doc, "text": f"text of {doc}"} for doc in ("a", "b")]
    with live_server.client() as client:
        session = {"session_id": "s0", "query": "q", "results": results, "clicks": ["b"]}
        client.feedback.send(session)
    page.goto(f"{live_server.url}/#/tasks")
    batch = page.get_by_label("Training batch")
    expect(batch).to_have_value("")
    expect(batch.locator("option:checked")).to_contain_text("collected feedback (1 sessions")


def test_cancel_asks_first_and_does_nothing_when_declined(
    page: Page, live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    with live_server.client() as client:
        task = client.tasks.create(
            live_model, batch_id=live_batch, metadata=script(steps=300, step_seconds=0.1)
        )
    page.goto(f"{live_server.url}/#/tasks/{task.id}")
    expect(page.locator("h1 + .badge")).to_have_text("processing")
    asked: list[str] = []

    def decline(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", decline)
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_timeout(600)  # a poll or two
    expect(page.locator("h1 + .badge")).to_have_text("processing")
    assert asked and task.id in asked[0]
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("h1 + .badge")).to_have_text("canceled")


def test_task_page_shows_options_example_counts_run_time_and_opens_the_model(
    page: Page, live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    metadata = {**script(steps=2), "training": {"epochs": 2, "learning_rate": 3e-5}, "team": "x"}
    with live_server.client() as client:
        created = client.tasks.create(live_model, batch_id=live_batch, metadata=metadata)
        task = client.tasks.wait(created.id, timeout=30, poll_interval=0.05)
    assert task.best_model_id is not None
    with new_session(writer=True) as session:  # as the sentence-transformers plugin stores them
        row = session.get(Task, task.id)
        assert row is not None
        row.metrics = {
            "before": {"mrr@10": 0.41},
            "after": {"mrr@10": 0.63},
            "train_examples": 360,
            "eval_examples": 40,
        }
        session.commit()
    page.goto(f"{live_server.url}/#/tasks/{task.id}")
    facts = page.locator(".facts")
    expect(facts).to_contain_text("epochs=2")
    expect(facts).to_contain_text("learning_rate=0.00003")
    expect(facts).to_contain_text('{"script"')  # the free-form rest of the metadata
    expect(facts).to_contain_text("360 train · 40 held out")
    expect(facts.locator("div", has_text="Run time").locator("dd")).to_have_text(
        re.compile(r"^\d+s$")
    )
    _shot(page, "task-details")

    facts.get_by_role("link", name=task.best_model_id).click()
    expect(page.locator(".crumbs")).to_contain_text(task.best_model_id)
    expect(page.locator(".facts")).to_contain_text(live_model)  # fine-tuned from
    _shot(page, "model-details")

    page.get_by_role("navigation").get_by_role("link", name="Models").click()
    link = page.locator(f"tr[data-model='{task.best_model_id}'] td.id a")
    box = link.bounding_box()
    assert box is not None and box.get("height", 0) < 24  # the id on one line
    _shot(page, "models-table")


def test_api_docs_render_with_the_internet_cut_off(page: Page, live_server: LiveServer) -> None:
    external: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{live_server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("embedtune")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    _shot(page, "api-docs")
    assert external == []
    page.goto(f"{live_server.url}/redoc")
    expect(page.locator("h1").first).to_contain_text("embedtune")
    expect(page.locator("[data-section-id]").first).to_be_visible()
    # ReDoc's bundle asks for the logo of its "API docs by Redocly" footer, and hides the
    # image when it cannot load: the one request that leaves the server, and a harmless one.
    assert set(external) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}
