"""The outermost guards: a clean 500 that keeps the connection, and NUL in URLs."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import both_databases
from live_server import serving


def test_connection_stays_usable_after_an_unexpected_error(
    settings_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    from embedtune.app import create_app

    app = create_app()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a defect")

    caplog.set_level(logging.ERROR, logger="embedtune.core.guards")
    with serving(app) as url, httpx.Client(base_url=url) as client:
        for _ in range(5):
            failed = client.get("/boom", headers={"X-Request-ID": "req-42"})
            assert failed.status_code == 500
            assert failed.json() == {"detail": "internal error", "code": "internal_error"}
            assert failed.headers["X-Request-ID"] == "req-42"
            # The very next request on the same keep-alive connection is served.
            assert client.get("/health").status_code == 200
        assert client.get("/health").headers.get("connection") != "close"
    assert "request_id=req-42" in caplog.text
    assert "RuntimeError: a defect" in caplog.text


@both_databases
@pytest.mark.parametrize(
    "path", ["/fine-tuning/task/%00", "/models/a%00b", "/batches/%00/", "/models/%00/download"]
)
def test_nul_in_a_path_id_is_404(app_client: TestClient, path: str) -> None:
    response = app_client.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_nul_in_a_query_parameter_is_422(app_client: TestClient) -> None:
    response = app_client.get("/fine-tuning/task?status=pending%00")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
