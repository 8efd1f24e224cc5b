"""Process metrics at /metrics: HTTP by route template, embeddings, model loads, queue."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from embedtune.core import telemetry


def _value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` of an exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + ("{" if labels else " ")):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_http_requests_are_counted_and_timed_by_route_template(app_client: TestClient) -> None:
    route = "/fine-tuning/task/{task_id}"
    labels = {"route": route, "method": "GET", "status": "404"}
    before = _value(app_client.get("/metrics").text, "embedtune_http_requests_total", **labels)
    for task_id in ("task_a", "task_b", "task_c"):
        assert app_client.get(f"/fine-tuning/task/{task_id}").status_code == 404
    app_client.get("/no/such/path")
    text = app_client.get("/metrics").text
    counted = _value(text, "embedtune_http_requests_total", **labels)
    assert counted - before == 3
    assert "task_a" not in text  # ids never become labels
    assert _value(text, "embedtune_http_requests_total", route="unmatched") >= 1
    assert _value(text, "embedtune_http_request_duration_seconds_count", route=route) >= 3


def test_embeddings_model_load_and_queue_depth_are_reported(app_client: TestClient) -> None:
    before = app_client.get("/metrics").text
    response = app_client.post("/v1/embeddings", json={"input": ["a cat", "a dog", "a bird"]})
    assert response.status_code == 200
    text = app_client.get("/metrics").text
    requests = _value(text, "embedtune_embedding_requests_total")
    assert requests - _value(before, "embedtune_embedding_requests_total") == 1
    texts = _value(text, "embedtune_embedding_texts_total")
    assert texts - _value(before, "embedtune_embedding_texts_total") == 3
    assert _value(text, "embedtune_embedding_request_texts_bucket", le="4.0") >= 1
    assert _value(text, "embedtune_embedding_batch_texts_count") >= 1
    assert _value(text, "embedtune_model_load_seconds_count") >= 1
    assert _value(text, "embedtune_queue_depth", queue="default") == 0
    assert "embedtune_queue_depth{" in text


def test_step_timer_turns_progress_reports_into_step_times() -> None:
    now = [100.0]
    timer = telemetry.StepTimer(clock=lambda: now[0])
    count = telemetry.TRAINING_STEP._sum.get(), telemetry.TRAINING_STEP.collect()
    samples = {s.name: s.value for s in count[1][0].samples}
    before_count = samples["embedtune_training_step_seconds_count"]
    timer.step(0)
    now[0] += 2.0
    timer.step(4)  # four steps in two seconds
    timer.step(4)  # the same step again: nothing new
    samples = {s.name: s.value for s in telemetry.TRAINING_STEP.collect()[0].samples}
    assert samples["embedtune_training_step_seconds_count"] - before_count == 4


def _sample(metric: Any, name: str) -> float:
    samples = {s.name: s.value for s in metric.collect()[0].samples}
    return samples[name]


def test_step_timer_counts_training_tokens_and_tokens_per_second() -> None:
    now = [50.0]
    timer = telemetry.StepTimer(clock=lambda: now[0])
    before = _sample(telemetry.TRAINING_TOKENS, "embedtune_training_tokens_total")
    timer.step(2, tokens=1000)
    now[0] += 4.0
    timer.step(6, tokens=9000)  # 8,000 tokens in four seconds
    timer.step(6, tokens=9000)  # the same report again: nothing new
    after = _sample(telemetry.TRAINING_TOKENS, "embedtune_training_tokens_total")
    assert after - before == 8000
    rate = _sample(telemetry.TRAINING_TOKENS_PER_SECOND, "embedtune_training_tokens_per_second")
    assert rate == 2000
