"""The dashboard in real headless Chromium: upload, create, watch, cancel, the key prompt.

Screenshots land in tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from embedtune.core.db import new_session
from embedtune.fine_tuning.tables import Task
from live_server import LiveServer, create_api_key, script

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 820})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], errors


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def test_upload_a_batch_create_a_task_watch_it_finish_and_cancel_another(
    page: Page, live_server: LiveServer, live_model: str, live_batch: str, tmp_path: Path
) -> None:
    data = tmp_path / "support-pairs.jsonl"
    data.write_text(
        "".join(json.dumps({"query": f"q{i}", "positive": f"p{i}"}) + "\n" for i in range(5))
    )

    page.goto(f"{live_server.url}/#/batches")
    page.get_by_label("File").set_input_files(str(data))
    page.get_by_role("button", name="Upload").click()
    row = page.locator("tr[data-batch]").filter(has_text="support-pairs.jsonl")
    expect(row).to_contain_text("5")
    _shot(page, "batches")

    page.get_by_role("link", name="Tasks").click()
    page.get_by_label("Base model").select_option(live_model)
    page.get_by_label("Training batch").select_option(
        label=page.locator("select[name=batch] option", has_text="support-pairs.jsonl").inner_text()
    )
    page.get_by_label("Options (JSON, optional)").fill(
        json.dumps(script(steps=8, step_seconds=0.4))
    )
    page.get_by_role("button", name="Create task").click()
    expect(page.locator(".crumbs")).to_contain_text("ft-")
    expect(page.locator("h1 + .badge")).to_have_text("processing")
    expect(page.locator(".progress-line")).to_contain_text("step")
    _shot(page, "task-running")
    expect(page.locator("h1 + .badge")).to_have_text("completed")
    expect(page.locator(".progress-line")).to_contain_text("100%")
    expect(page.locator(".chart polyline")).to_have_count(1)  # the loss seen while it ran
    expect(page.locator(".facts")).to_contain_text("ftm-")
    expect(page.locator("table")).to_contain_text("completed")
    _shot(page, "task-completed")

    with live_server.client() as client:
        long = client.tasks.create(
            live_model, batch_id=live_batch, metadata=script(steps=200, step_seconds=0.1)
        )
    page.goto(f"{live_server.url}/#/tasks")
    row = page.locator(f"tr[data-task='{long.id}']")
    expect(row.locator(".badge")).to_have_text("processing")
    _shot(page, "tasks-list")
    page.once("dialog", lambda dialog: dialog.accept())  # "Cancel task …?"
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator(".badge")).to_have_text("canceled")
    expect(row.get_by_role("button", name="Restart")).to_be_visible()
    page.get_by_label("Status filter").select_option("canceled")
    expect(page.locator("tr[data-task]")).to_have_count(1)
    _shot(page, "tasks-canceled")

    page.get_by_role("link", name="Models").click()
    expect(page.locator("tr[data-model]")).to_have_count(3)  # bundled, scripted base, result
    download = page.locator(f"tr[data-model='{live_model}']").get_by_role("link", name="Download")
    with page.expect_download() as event:
        download.click()
    assert event.value.suggested_filename == f"{live_model}.tar.gz"
    _shot(page, "models")


def test_the_dashboard_asks_for_the_key_once(
    page: Page, live_server: LiveServer, live_model: str
) -> None:
    secret = create_api_key("browser")
    live_server.wait_for_auth()
    page.goto(f"{live_server.url}/#/models")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    _shot(page, "key-prompt")
    page.locator("#key-input").fill("et_wrong")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#key-error")).to_be_visible()
    page.locator("#key-input").fill(secret)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(f"tr[data-model='{live_model}']")).to_be_visible()
    page.reload()
    expect(page.locator(f"tr[data-model='{live_model}']")).to_be_visible()
    expect(dialog).to_be_hidden()
    with page.expect_download() as event:
        page.locator(f"tr[data-model='{live_model}']").get_by_role("link", name="Download").click()
    assert event.value.suggested_filename == f"{live_model}.tar.gz"


#: What the sentence-transformers plugin records (two hyper-parameter trials).
EVALUATED = {
    "before": {"mrr@10": 0.41, "ndcg@10": 0.47, "recall@1": 0.3, "recall@10": 0.72},
    "after": {"mrr@10": 0.63, "ndcg@10": 0.68, "recall@1": 0.52, "recall@10": 0.9},
    "improved": True,
    "loss_curve": [
        {"step": step, "loss": round(2.0 / (step + trial), 4), "trial": trial}
        for trial in (0, 1)
        for step in range(1, 21)
    ],
    "eval_curve": [
        {"step": step, "trial": trial, "mrr@10": 0.41 + step / 100 - trial / 50, "ndcg@10": 0.5}
        for trial in (0, 1)
        for step in (5, 10, 15, 20)
    ],
    "checkpoints": [
        {
            "name": "step-15",
            "step": 15,
            "metrics": {"mrr@10": 0.63, "ndcg@10": 0.68},
            "loss": 0.13,
            "best": True,
            "last": False,
        },
        {
            "name": "step-20",
            "step": 20,
            "metrics": {"mrr@10": 0.61, "ndcg@10": 0.66},
            "loss": 0.1,
            "best": False,
            "last": True,
        },
    ],
}


def test_a_finished_task_shows_its_loss_and_eval_curves_metrics_and_checkpoints(
    page: Page, live_server: LiveServer, live_model: str, live_batch: str
) -> None:
    with live_server.client() as client:
        created = client.tasks.create(live_model, batch_id=live_batch, metadata=script())
        task = client.tasks.wait(created.id, timeout=30, poll_interval=0.05)
    with new_session(writer=True) as session:  # as a real training would have stored them
        row = session.get(Task, task.id)
        assert row is not None
        row.metrics = EVALUATED
        session.commit()
    page.goto(f"{live_server.url}/#/tasks/{task.id}")
    # One line per trial, beside the loss curve and below it the kept checkpoints.
    expect(page.locator(".chart polyline")).to_have_count(4)
    expect(page.locator(".eval-card .chart polyline")).to_have_count(2)
    expect(page.locator(".checkpoints-card tbody tr")).to_have_count(2)
    expect(page.locator(".checkpoints-card")).to_contain_text("step-15 (best)")
    expect(page.locator(".checkpoints-card button").first).to_have_text("Register as model")
    expect(page.locator(".chart rect.before")).to_have_count(4)
    expect(page.locator(".chart rect.after")).to_have_count(4)
    expect(page.locator(".good")).to_contain_text("beats the base model")
    expect(page.locator(".legend").first).to_contain_text("trial 1")
    _shot(page, "task-metrics")


def test_deployments_page_shows_the_blue_model(page: Page, live_server: LiveServer) -> None:
    page.goto(f"{live_server.url}/#/deployments")
    expect(page.locator(".blue-card")).to_contain_text("all-MiniLM-L6-v2")
    expect(page.get_by_role("button", name="Roll back to the previous blue")).to_be_disabled()
    expect(page.locator(".card").last).to_contain_text("No earlier blue model.")
    _shot(page, "deployments")
