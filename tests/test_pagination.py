"""Offsets beyond what SQL can take are refused, not passed to the database."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from conftest import both_databases

COLLECTIONS = ["/fine-tuning/task", "/models", "/batches", "/fine-tuning/task?status=pending"]


@both_databases
@pytest.mark.parametrize("url", COLLECTIONS)
def test_offset_beyond_the_bound_is_422(app_client: TestClient, url: str) -> None:
    joiner = "&" if "?" in url else "?"
    for offset in (2**63, 2**64, 10**9 + 1):
        response = app_client.get(f"{url}{joiner}offset={offset}")
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error"


@both_databases
def test_largest_offset_with_several_statuses_is_an_empty_page(app_client: TestClient) -> None:
    url = "/fine-tuning/task?status=pending&status=failed&offset=1000000000&limit=1000"
    response = app_client.get(url)
    assert response.status_code == 200, response.text
    assert response.json() == []
