"""The dashboard's Feedback page in real headless Chromium: summary, sessions, and a task
that fine-tunes on the feedback."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from live_server import LiveServer

from .test_dashboard import _shot, browser, page

__all__ = ["browser", "page"]


def test_the_feedback_page_shows_what_is_collected_and_fine_tunes_on_it(
    page: Page, live_server: LiveServer, live_model: str
) -> None:
    with live_server.client() as client:
        for index, clicks in enumerate((["b"], [], ["a"])):
            results = [{"id": doc, "text": f"text of {doc}"} for doc in ("a", "b")]
            body = {"session_id": f"s{index}", "query": "find it", "results": results}
            client.feedback.send({**body, "clicks": clicks})

    page.goto(f"{live_server.url}/#/feedback")
    expect(page.locator(".facts")).to_contain_text("66.7%")
    expect(page.locator("tr[data-session]")).to_have_count(3)
    expect(page.locator("tr[data-session='s0']")).to_contain_text("b (#2)")
    _shot(page, "feedback")
    page.get_by_label("Model").select_option(live_model)
    page.get_by_role("button", name="Fine-tune on feedback").click()
    expect(page.locator(".crumbs")).to_contain_text("ft-")
    with live_server.client() as client:
        [task] = client.tasks.list()
        batch = client.batches.get(task.batch_id or "")
    assert (batch.source, batch.release_id, batch.num_sessions) == ("feedback", task.id, 3)
